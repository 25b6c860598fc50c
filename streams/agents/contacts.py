"""Contacts family: assignments, leads per local day; `lead-alert` for each new contact."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import Event
from streams.tables import contacts, leads, locations
from streams.tables.registry import Tables

__all__ = ["TYPES", "handler"]

TYPES = contacts.CONTACT_TYPES | {locations.SETTINGS_TYPE}


def handler(tables: Tables) -> Any:
    contact_table = tables[contacts.CONTACTS]
    leads_table = tables[leads.LEADS]
    lead_contacts = tables[leads.LEAD_CONTACTS]

    def handle(event: Event) -> list[dict[str, Any]]:
        if event.type == locations.SETTINGS_TYPE:
            settings_location, timezone = locations.timezone_from(event)
            leads_table[settings_location] = leads.apply_timezone(
                leads_table.get(settings_location), timezone
            )
            return []
        contact_id = contacts.contact_id_of(event)
        location_id = event.location_id
        assert location_id is not None
        contact = contacts.apply_contact_event(contact_table.get(contact_id), event)
        if contact is None:
            contact_table.pop(contact_id, None)
        else:
            contact_table[contact_id] = contact
        if event.type != leads.LEAD_TYPE:
            return []

        key = leads.lead_key(location_id, contact_id)
        seen = lead_contacts.get(key) is not None
        location, day = leads.apply_lead(leads_table.get(location_id), seen, event)
        if day is None:
            return []
        lead_contacts[key] = True
        leads_table[location_id] = location
        body = event.body
        data = {
            "location_id": location_id,
            "contact_id": contact_id,
            "date": day,
            "name": body.get("name")
            or " ".join(
                p for p in (body.get("firstName"), body.get("lastName")) if isinstance(p, str)
            ),
            "source": body.get("source"),
            "assigned_to": contact["assigned_to"] if contact else None,
            "leads_today": location["days"][day],
        }
        out = [derived_event("lead-alert", location_channel(location_id), data, event)]
        if contact and contact["assigned_to"]:
            out.append(
                derived_event(
                    "lead-alert",
                    user_channel(contact["assigned_to"]),
                    {**data, "email": body.get("email"), "phone": body.get("phone")},
                    event,
                )
            )
        return out

    return handle
