"""Leads per (location, local date): distinct contact ids first seen in a `ContactCreate`.

Tables: `leads` (location id -> LocationLeads) and `lead_contacts` ("{location}/{contact}" -> True).
The location's timezone is part of this projection's state, applied in log order.
"""

from __future__ import annotations

from typing import TypedDict

from streams.events import Event, event_time, local_date

__all__ = ["LEAD_TYPE", "LocationLeads", "apply_lead", "apply_timezone", "lead_key"]

LEADS = "leads"
LEAD_CONTACTS = "lead_contacts"
LEAD_TYPE = "ContactCreate"


class LocationLeads(TypedDict):
    timezone: str | None
    days: dict[str, int]  # "YYYY-MM-DD" -> new contacts


def lead_key(location_id: str, contact_id: str) -> str:
    return f"{location_id}/{contact_id}"


def apply_lead(
    location: LocationLeads | None, seen: bool, event: Event
) -> tuple[LocationLeads, str | None]:
    """The location's leads after a `ContactCreate`; the local date it counted on, or None."""
    location = location or {"timezone": None, "days": {}}
    if seen:
        return location, None
    day = local_date(event_time(event), location["timezone"]).isoformat()
    return {
        "timezone": location["timezone"],
        "days": {**location["days"], day: location["days"].get(day, 0) + 1},
    }, day


def apply_timezone(location: LocationLeads | None, timezone: str) -> LocationLeads:
    return {"timezone": timezone, "days": (location or {"days": {}})["days"]}
