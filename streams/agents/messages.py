"""Messages family: `new-message` for each inbound message seen for the first time;
`message-status` to its sender when an outbound message's status moves forward (read receipts)."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import Event
from streams.tables import contacts, message_status, messages, unread
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler", "message_status_data"]

TYPES = messages.MESSAGE_TYPES


def message_status_data(change: message_status.StatusChange) -> dict[str, Any]:
    receipt = change.receipt
    return {
        "location_id": receipt.location_id,
        "message_id": receipt.message_id,
        "conversation_id": receipt.conversation_id,
        "contact_id": receipt.contact_id,
        "message_type": receipt.message_type,
        "status": receipt.status,
        "previous_status": change.previous,
    }


def handler(tables: Tables) -> Any:
    notified = tables[messages.NOTIFIED_MESSAGES]
    contact_table = tables[contacts.CONTACTS]

    def handle(event: Event) -> list[dict[str, Any]]:
        if event.type == message_status.OUTBOUND_TYPE:
            change = message_status.update(tables, event)
            if change is None or change.user_id is None or not event.live:
                return []
            data = message_status_data(change)
            return [derived_event("message-status", user_channel(change.user_id), data, event)]
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
