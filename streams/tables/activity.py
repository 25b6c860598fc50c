"""Recent activity of each contact and each location: what happened, newest first.

One entry per thing that happened: a contact created, updated, tagged, deleted; a note; a task
created, completed, deleted; a message in or out; a payment; an appointment booked, changed,
cancelled; an opportunity created, moved, won or lost. Kept: the newest `CONTACT_ENTRIES` of a
contact and the newest `LOCATION_ENTRIES` of a location, by when it happened (the event's time;
equal times by entry id, so that the order, and what a redelivery does, never depend on when a
record arrived).

An entry is one (time, id): its id is its webhook's id (a message's: its message id, so a
status update of the message, which states the same `dateAdded`, is no new entry), and a
redelivered webhook adds nothing. Each feed is kept oldest first; the answers turn it round. Entries go to
location-wide channels, so their titles carry no e-mail address or phone number and message
previews are short. The fold never refuses a record: what it cannot place (no location, no
time) simply adds no entry, and the family that owns the record says why it is bad.

Tables: `activity_by_contact` ("{location}/{contact}" -> [Entry], oldest first) and
`activity_by_location` (location id -> [Entry], oldest first).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable
from typing import Any, TypedDict

from streams.derived import masked, preview
from streams.events import Event, event_time, utc_millis
from streams.money import MoneyError, decimal_amount
from streams.tables.projection import Fold, Tables

__all__ = [
    "ACTIVITY_BY_CONTACT",
    "ACTIVITY_BY_LOCATION",
    "CONTACT_ENTRIES",
    "FOLD",
    "LOCATION_ENTRIES",
    "TYPES",
    "Entry",
    "add",
    "entry_from",
    "update",
]

ACTIVITY_BY_CONTACT = "activity_by_contact"
ACTIVITY_BY_LOCATION = "activity_by_location"
CONTACT_ENTRIES = 50
LOCATION_ENTRIES = 100


class Entry(TypedDict):
    id: str
    at: str  # when it happened, UTC, to the millisecond (entries sort by it as text)
    kind: str
    contact_id: str | None
    ref: str | None  # the id of what it is about: message, task, invoice, appointment...
    title: str | None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _contact(body: dict[str, Any]) -> str | None:
    return _text(body.get("contactId"))


def _contact_event(kind: str) -> Callable[[dict[str, Any]], tuple[str, str | None, Any, Any]]:
    def describe(body: dict[str, Any]) -> tuple[str, str | None, Any, Any]:
        name = _text(body.get("name")) or " ".join(
            part for part in (_text(body.get("firstName")), _text(body.get("lastName"))) if part
        )
        if kind == "tags-changed":
            tags = body.get("tags")
            name = (
                ", ".join(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ""
            )
        return kind, _text(body.get("id")), body.get("id"), name or None

    return describe


def _about_contact(kind: str, title_field: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def describe(body: dict[str, Any]) -> tuple[str, str | None, Any, Any]:
        title = _text(body.get(title_field))
        return kind, _contact(body), body.get("id"), preview(title) if title else None

    return describe


def _message(body: dict[str, Any]) -> tuple[str, str | None, Any, Any]:
    kind = "message-received" if body.get("type") == "InboundMessage" else "message-sent"
    text = _text(body.get("body")) or _text(body.get("subject"))
    return kind, _contact(body), body.get("messageId"), preview(text) if text else None


def _payment(body: dict[str, Any]) -> tuple[str, str | None, Any, Any]:
    details = body.get("contactDetails")
    contact = _text(details.get("id")) if isinstance(details, dict) else _contact(body)
    currency = _text(body.get("currency"))
    try:
        paid = f"{decimal_amount(body.get('amountPaid'))} {currency or ''}".strip()
    except MoneyError:
        paid = None
    invoice = _text(body.get("name")) or _text(body.get("invoiceNumber"))
    title = f"{invoice}: {paid} paid" if invoice and paid else paid
    return "payment", contact, body.get("_id") or body.get("id"), title


def _appointment(kind: str) -> Callable[[dict[str, Any]], tuple[str, str | None, Any, Any]]:
    def describe(body: dict[str, Any]) -> tuple[str, str | None, Any, Any]:
        appointment = body.get("appointment")
        details = appointment if isinstance(appointment, dict) else body
        status = details.get("appointmentStatus")
        named = "appointment-cancelled" if status == "cancelled" else kind
        return named, _contact(details), details.get("id"), _text(details.get("title"))

    return describe


def _opportunity(kind: str) -> Callable[[dict[str, Any]], tuple[str, str | None, Any, Any]]:
    def describe(body: dict[str, Any]) -> tuple[str, str | None, Any, Any]:
        named = kind
        if kind == "opportunity-status":
            status = _text(body.get("status")) or "updated"
            named = "opportunity-reopened" if status == "open" else f"opportunity-{status}"
        return named, _contact(body), body.get("id"), _text(body.get("name"))

    return describe


# Event type -> (kind, contact id, ref, title) of the entry it makes.
DESCRIBE: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    "ContactCreate": _contact_event("contact-created"),
    "ContactUpdate": _contact_event("contact-updated"),
    "ContactDelete": _contact_event("contact-deleted"),
    "ContactTagUpdate": _contact_event("tags-changed"),
    "ContactDndUpdate": _contact_event("dnd-changed"),
    "NoteCreate": _about_contact("note-added", "body"),
    "NoteUpdate": _about_contact("note-updated", "body"),
    "NoteDelete": _about_contact("note-deleted", "body"),
    "TaskCreate": _about_contact("task-created", "title"),
    "TaskComplete": _about_contact("task-completed", "title"),
    "TaskDelete": _about_contact("task-deleted", "title"),
    "InboundMessage": _message,
    "OutboundMessage": _message,
    "InvoicePaid": _payment,
    "InvoicePartiallyPaid": _payment,
    "AppointmentCreate": _appointment("appointment-booked"),
    "AppointmentUpdate": _appointment("appointment-updated"),
    "AppointmentDelete": _appointment("appointment-deleted"),
    "OpportunityCreate": _opportunity("opportunity-created"),
    "OpportunityStageUpdate": _opportunity("opportunity-moved"),
    "OpportunityStatusUpdate": _opportunity("opportunity-status"),
    "OpportunityMonetaryValueUpdate": _opportunity("opportunity-updated"),
    "OpportunityAssignedToUpdate": _opportunity("opportunity-updated"),
    "OpportunityUpdate": _opportunity("opportunity-updated"),
    "OpportunityDelete": _opportunity("opportunity-deleted"),
}
TYPES = frozenset(DESCRIBE)
MESSAGE_TYPES = frozenset({"InboundMessage", "OutboundMessage"})


def entry_from(event: Event) -> Entry | None:
    """The entry `event` makes; None when it makes none (not an activity, or no location)."""
    describe = DESCRIBE.get(event.type)
    if describe is None or event.location_id is None:
        return None
    at = utc_millis(event_time(event))
    kind, contact_id, ref, title = describe(event.body)
    ref = ref if isinstance(ref, str) and ref else None
    if event.type in MESSAGE_TYPES and ref is not None:
        entry_id = f"message:{ref}"
    else:
        entry_id = event.webhook_id
    return {
        "id": entry_id,
        "at": at,
        "kind": kind,
        "contact_id": contact_id,
        "ref": ref,
        "title": masked(title) if isinstance(title, str) else title,
    }


def add(entries: list[Entry] | None, entry: Entry, keep: int) -> list[Entry] | None:
    """`entries` (oldest first) with `entry` in its place, the newest `keep` of them; None when
    it changes nothing (already there, or older than all `keep` kept)."""
    current = entries or []
    # Ordered by (time, id): a redelivery lands on itself, or, once dropped, below the oldest
    # kept; either way it changes nothing. What happens now goes last; else a binary search
    # by time, then by id among equal times (rare). Each way copies the list once: the old
    # one may still be read (a record's undo, the batch being committed).
    at, entry_id = entry["at"], entry["id"]
    if not current or (at, entry_id) > (current[-1]["at"], current[-1]["id"]):
        added = current[-keep + 1 :] if keep > 1 else []
        added.append(entry)
        return added
    position = bisect.bisect_left(current, at, key=_at)
    end = len(current)
    while position < end and current[position]["at"] == at and current[position]["id"] < entry_id:
        position += 1
    if position < end and current[position]["at"] == at and current[position]["id"] == entry_id:
        return None
    if position == 0 and end >= keep:
        return None
    added = current.copy()
    added.insert(position, entry)
    del added[:-keep]
    return added


_at = operator.itemgetter("at")


def update(tables: Tables, event: Event) -> Entry | None:
    """Fold `event` into the activity tables; the entry it added, if any."""
    entry = entry_from(event)
    if entry is None:
        return None
    location_id = event.location_id
    assert location_id is not None
    by_location = tables[ACTIVITY_BY_LOCATION]
    added = add(by_location.get(location_id), entry, LOCATION_ENTRIES)
    if added is not None:
        by_location[location_id] = added
    contact_added = None
    if entry["contact_id"] is not None:
        key = f"{location_id}/{entry['contact_id']}"
        by_contact = tables[ACTIVITY_BY_CONTACT]
        contact_added = add(by_contact.get(key), entry, CONTACT_ENTRIES)
        if contact_added is not None:
            by_contact[key] = contact_added
    return entry if added is not None or contact_added is not None else None


FOLD = Fold((ACTIVITY_BY_LOCATION, ACTIVITY_BY_CONTACT), TYPES, update, family="activity")
