"""New inbound messages, for `new-message` notifications: each message id once per conversation.

Table: `notified_messages` ("{conversation}/{message}" -> True). Kept apart from unread's own
seen set so that each projection folds its own records in log order and rebuilds on its own.
"""

from __future__ import annotations

from typing import Any

from streams.derived import preview
from streams.events import iso_z
from streams.tables.unread import InboundMessage

__all__ = ["MESSAGE_TYPES", "NOTIFIED_MESSAGES", "new_message_data"]

NOTIFIED_MESSAGES = "notified_messages"
MESSAGE_TYPES = frozenset({"InboundMessage", "OutboundMessage"})


def new_message_data(message: InboundMessage) -> dict[str, Any]:
    return {
        "location_id": message.location_id,
        "conversation_id": message.conversation_id,
        "message_id": message.message_id,
        "contact_id": message.contact_id,
        "message_type": message.message_type,
        "preview": preview(message.body),
        "date_added": iso_z(message.occurred_at),
    }
