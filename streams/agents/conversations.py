"""Conversations family: unread counts per conversation, in log order; `unread-changed`.

Both `InboundMessage` and `ConversationUnreadUpdate` move the unread count, so this one agent
folds both: two agents would see them in different orders.
"""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import Event
from streams.tables import unread
from streams.tables.registry import Tables

__all__ = ["TYPES", "handler"]

TYPES = frozenset({unread.INBOUND_TYPE, unread.UNREAD_UPDATE_TYPE})


def handler(tables: Tables) -> Any:
    conversations = tables[unread.CONVERSATIONS]
    seen_messages = tables[unread.SEEN_MESSAGES]
    by_location = tables[unread.UNREAD_BY_LOCATION]
    contacts = tables["contacts"]

    def handle(event: Event) -> list[dict[str, Any]]:
        if event.type == unread.INBOUND_TYPE:
            message = unread.inbound_from(event)
            conversation_id, location_id = message.conversation_id, message.location_id
            seen = seen_messages.get(message.seen_key) is not None
            conversation, changed = unread.apply_inbound(
                conversations.get(conversation_id), seen, message
            )
            if not seen:
                seen_messages[message.seen_key] = True
        else:
            update = unread.unread_update_from(event)
            conversation_id, location_id = update.conversation_id, update.location_id
            conversation, changed = unread.apply_unread_update(
                conversations.get(conversation_id), update
            )
        if not changed:
            return []
        conversations[conversation_id] = conversation
        location = unread.unread_by_location(
            by_location.get(location_id), conversation_id, conversation
        )
        by_location[location_id] = location

        data = {
            "location_id": location_id,
            "conversation_id": conversation_id,
            "contact_id": conversation["contact"],
            "unread": conversation["unread"],
            "location_total": sum(e["unread"] for e in location.values()),
        }
        out = [derived_event("unread-changed", location_channel(location_id), data, event)]
        contact = contacts.get(conversation["contact"]) if conversation["contact"] else None
        if contact and contact["assigned_to"]:
            out.append(
                derived_event("unread-changed", user_channel(contact["assigned_to"]), data, event)
            )
        return out

    return handle
