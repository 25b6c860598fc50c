"""Contacts: who each contact is assigned to (for unread per user and for routing notifications).

Table: `contacts` (contact id -> Contact). `ContactDelete` forgets the contact.
"""

from __future__ import annotations

from typing import TypedDict

from streams.events import BadRecord, Event
from streams.tables.projection import Fold, Tables

__all__ = ["CONTACT_TYPES", "FOLD", "Contact", "apply_contact_event", "contact_id_of", "update"]

CONTACTS = "contacts"
CONTACT_TYPES = frozenset(
    {"ContactCreate", "ContactUpdate", "ContactDelete", "ContactTagUpdate", "ContactDndUpdate"}
)


class Contact(TypedDict):
    location: str
    assigned_to: str | None


def contact_id_of(event: Event) -> str:
    contact_id = event.body.get("id")
    if not isinstance(contact_id, str) or not contact_id or event.location_id is None:
        raise BadRecord(f"{event.type}: locationId and id (the contact id) are required")
    return contact_id


def apply_contact_event(contact: Contact | None, event: Event) -> Contact | None:
    """The contact after `event`; None once deleted. Absent `assignedTo` keeps the assignment."""
    if event.type == "ContactDelete":
        return None
    assert event.location_id is not None
    assigned = event.body.get("assignedTo", contact["assigned_to"] if contact else None)
    if assigned is not None and not isinstance(assigned, str):
        raise BadRecord(f"{event.type}: assignedTo must be a user id string, got {assigned!r}")
    return {"location": event.location_id, "assigned_to": assigned or None}


def update(tables: Tables, event: Event) -> Contact | None:
    """Fold `event` into the contacts table; the contact after it (None once deleted)."""
    contact_table = tables[CONTACTS]
    contact_id = contact_id_of(event)
    contact = apply_contact_event(contact_table.get(contact_id), event)
    if contact is None:
        contact_table.pop(contact_id, None)
    else:
        contact_table[contact_id] = contact
    return contact


FOLD = Fold((CONTACTS,), CONTACT_TYPES, update, family="contacts")
