"""Leads per (location, local date): distinct contact ids first seen in a `ContactCreate`.

Tables: `leads` (location id -> LocationLeads) and `lead_contacts` ("{location}/{contact}" -> True).
The location's timezone is part of this projection's state, applied in log order.
"""

from __future__ import annotations

from typing import TypedDict

from streams.events import Event, event_time, local_date
from streams.tables import locations
from streams.tables.contacts import contact_id_of
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "LEAD_TYPE",
    "LocationLeads",
    "apply_lead",
    "apply_timezone",
    "lead_key",
    "update",
]

LEADS = "leads"
LEAD_CONTACTS = "lead_contacts"
LEAD_TYPE = "ContactCreate"
TYPES = frozenset({LEAD_TYPE, locations.SETTINGS_TYPE})


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


def update(tables: Tables, event: Event) -> tuple[str, LocationLeads] | None:
    """Fold `event` into the leads tables; for a new lead, the local date it counted on and its
    location's leads."""
    leads_table = tables[LEADS]
    if event.type == locations.SETTINGS_TYPE:
        settings_location, timezone = locations.timezone_from(event)
        leads_table[settings_location] = apply_timezone(
            leads_table.get(settings_location), timezone
        )
        return None
    contact_id, location_id = contact_id_of(event), event.location_id
    assert location_id is not None  # contact_id_of checked it
    key = lead_key(location_id, contact_id)
    lead_contacts = tables[LEAD_CONTACTS]
    location, day = apply_lead(
        leads_table.get(location_id), lead_contacts.get(key) is not None, event
    )
    if day is None:
        return None
    lead_contacts[key] = True
    leads_table[location_id] = location
    return day, location


FOLD = Fold((LEADS, LEAD_CONTACTS), TYPES, update, family="contacts")
