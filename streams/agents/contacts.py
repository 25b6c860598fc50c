"""Contacts family: assignments, leads per local day; `lead-alert` for each new contact.

Notes (`NoteCreate|Update|Delete`) belong to contacts as well; no projection reads them yet, so
they only have to name their location and note, else they are dead-lettered with the reason.
"""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import BadRecord, Event
from streams.tables import contacts, leads
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler"]

NOTE_TYPES = frozenset({"NoteCreate", "NoteUpdate", "NoteDelete"})
TYPES = contacts.CONTACT_TYPES | leads.TYPES | NOTE_TYPES


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        if event.type in NOTE_TYPES:
            if event.location_id is None or not isinstance(event.body.get("id"), str):
                raise BadRecord(f"{event.type}: locationId and id (the note id) are required")
            return []
        contact = contacts.update(tables, event) if event.type in contacts.CONTACT_TYPES else None
        new_lead = leads.update(tables, event) if event.type in leads.TYPES else None
        if new_lead is None or not event.live:
            return []
        day, location = new_lead
        body = event.body
        data = {
            "location_id": event.location_id,
            "contact_id": body["id"],
            "date": day,
            "name": body.get("name")
            or " ".join(
                p for p in (body.get("firstName"), body.get("lastName")) if isinstance(p, str)
            ),
            "source": body.get("source"),
            "assigned_to": contact["assigned_to"] if contact else None,
            "leads_today": location["days"][day],
        }
        assert event.location_id is not None  # the folds checked it
        out = [derived_event("lead-alert", location_channel(event.location_id), data, event)]
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
