"""Messages family: `new-message` for each inbound message seen for the first time."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import Event
from streams.tables import contacts, messages, unread
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler"]

TYPES = messages.MESSAGE_TYPES


def handler(tables: Tables) -> Any:
    notified = tables[messages.NOTIFIED_MESSAGES]
    contact_table = tables[contacts.CONTACTS]

    def handle(event: Event) -> list[dict[str, Any]]:
        if event.type != unread.INBOUND_TYPE:
            return []  # outbound messages notify nobody (yet)
        message = unread.inbound_from(event)
        if notified.get(message.seen_key) is not None:
            return []
        notified[message.seen_key] = True
        if not event.live:
            return []  # history notifies nobody: no need to build what is not sent
        data = messages.new_message_data(message)
        contact = contact_table.get(message.contact_id) if message.contact_id else None
        assignee = (contact or {}).get("assigned_to") or message.user_id
        out = [derived_event("new-message", location_channel(message.location_id), data, event)]
        if assignee:
            out.append(derived_event("new-message", user_channel(assignee), data, event))
        return out

    return handle
