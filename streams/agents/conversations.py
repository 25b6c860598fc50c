"""Conversations family: unread counts per conversation, in log order; `unread-changed`.

Both `InboundMessage` and `ConversationUnreadUpdate` move the unread count, so this one agent
folds both: two agents would see them in different orders.
"""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import Event
from streams.tables import contacts, unread
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler"]

TYPES = unread.TYPES


def handler(tables: Tables) -> Any:
    contact_table = tables[contacts.CONTACTS]

    def handle(event: Event) -> list[dict[str, Any]]:
        change = unread.update(tables, event)
        if change is None or not event.live:
            return []
        conversation_id, conversation, location = change
        location_id = conversation["location"]
        data = {
            "location_id": location_id,
            "conversation_id": conversation_id,
            "contact_id": conversation["contact"],
            "unread": conversation["unread"],
            "location_total": sum(e["unread"] for e in location.values()),
        }
        out = [derived_event("unread-changed", location_channel(location_id), data, event)]
        contact = contact_table.get(conversation["contact"]) if conversation["contact"] else None
        if contact and contact["assigned_to"]:
            out.append(
                derived_event("unread-changed", user_channel(contact["assigned_to"]), data, event)
            )
        return out

    return handle
