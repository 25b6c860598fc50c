"""Unread messages per conversation, in log order.

`ConversationUnreadUpdate` (conversation id in `id`) sets the count to `unreadCount`. An
`InboundMessage` whose `messageId` was not seen before for its conversation adds 1; a duplicate adds
nothing (a message without `messageId` is identified by its webhook id, so a redelivery still adds
nothing). The per-location total is the sum over its conversations; the per-user total the sum over
conversations whose contact is assigned to that user (see `contacts`).

Tables: `conversations` (conversation id -> Conversation), `seen_messages`
("{conversation}/{message}" -> True) and `unread_by_location` (location id -> UnreadByConversation,
only conversations with unread messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, TypedDict

from streams.events import BadRecord, Event, event_time
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "Conversation",
    "InboundMessage",
    "UnreadByConversation",
    "UnreadUpdate",
    "apply_inbound",
    "apply_unread_update",
    "inbound_from",
    "unread_by_location",
    "unread_update_from",
    "update",
]

CONVERSATIONS = "conversations"
SEEN_MESSAGES = "seen_messages"
UNREAD_BY_LOCATION = "unread_by_location"
INBOUND_TYPE = "InboundMessage"
UNREAD_UPDATE_TYPE = "ConversationUnreadUpdate"
TYPES = frozenset({INBOUND_TYPE, UNREAD_UPDATE_TYPE})


class Conversation(TypedDict):
    location: str
    contact: str | None
    unread: int


class UnreadEntry(TypedDict):
    unread: int
    contact: str | None


UnreadByConversation = dict[str, UnreadEntry]


# Made for every message: a named tuple is immutable too, and about 3x quicker to make than a
# frozen dataclass.
class InboundMessage(NamedTuple):
    location_id: str
    conversation_id: str
    message_id: str
    contact_id: str | None
    user_id: str | None
    message_type: str | None
    body: str
    occurred_at: datetime

    @property
    def seen_key(self) -> str:
        return f"{self.conversation_id}/{self.message_id}"


@dataclass(frozen=True, slots=True)
class UnreadUpdate:
    location_id: str
    conversation_id: str
    contact_id: str | None
    count: int


def _text(body: dict[str, object], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def inbound_from(event: Event) -> InboundMessage:
    """The inbound message `event` states (read once per event: two families fold it)."""
    return event.once(_inbound_from)


def _inbound_from(event: Event) -> InboundMessage:
    body = event.body
    location_id = event.location_id
    conversation_id = _text(body, "conversationId")
    if location_id is None or conversation_id is None:
        raise BadRecord(f"{INBOUND_TYPE}: locationId and conversationId are required")
    text = body.get("body")
    return InboundMessage(
        location_id=location_id,
        conversation_id=conversation_id,
        message_id=_text(body, "messageId") or f"webhook:{event.webhook_id}",
        contact_id=_text(body, "contactId"),
        user_id=_text(body, "userId"),
        message_type=_text(body, "messageType"),
        body=text if isinstance(text, str) else "",
        occurred_at=event_time(event),
    )


def unread_update_from(event: Event) -> UnreadUpdate:
    body = event.body
    location_id = event.location_id
    conversation_id = _text(body, "id")
    if location_id is None or conversation_id is None:
        raise BadRecord(f"{UNREAD_UPDATE_TYPE}: locationId and id are required")
    count = body.get("unreadCount")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise BadRecord(
            f"{UNREAD_UPDATE_TYPE}: unreadCount must be a whole number >= 0, got {count!r}"
        )
    return UnreadUpdate(location_id, conversation_id, _text(body, "contactId"), count)


def apply_inbound(
    conversation: Conversation | None, seen: bool, message: InboundMessage
) -> tuple[Conversation, bool]:
    """The conversation after `message`, and whether its unread count changed."""
    current = conversation or {"location": message.location_id, "contact": None, "unread": 0}
    contact = message.contact_id or current["contact"]
    if seen:
        return current, False
    return {
        "location": message.location_id,
        "contact": contact,
        "unread": current["unread"] + 1,
    }, True


def apply_unread_update(
    conversation: Conversation | None, update: UnreadUpdate
) -> tuple[Conversation, bool]:
    previous = conversation["unread"] if conversation else 0
    contact = update.contact_id or (conversation["contact"] if conversation else None)
    updated: Conversation = {
        "location": update.location_id,
        "contact": contact,
        "unread": update.count,
    }
    return updated, update.count != previous


def unread_by_location(
    location: UnreadByConversation | None, conversation_id: str, conversation: Conversation
) -> UnreadByConversation:
    """The location's unread map with `conversation` in it (or out of it, at zero)."""
    entries = dict(location or {})
    if conversation["unread"] > 0:
        entries[conversation_id] = {
            "unread": conversation["unread"],
            "contact": conversation["contact"],
        }
    else:
        entries.pop(conversation_id, None)
    return entries


def update(tables: Tables, event: Event) -> tuple[str, Conversation, UnreadByConversation] | None:
    """Fold `event` into the unread tables; when a count changed, the conversation id, the
    conversation and its location's unread map."""
    conversations, by_location = tables[CONVERSATIONS], tables[UNREAD_BY_LOCATION]
    if event.type == INBOUND_TYPE:
        message = inbound_from(event)
        conversation_id, location_id = message.conversation_id, message.location_id
        seen_messages = tables[SEEN_MESSAGES]
        seen = seen_messages.get(message.seen_key) is not None
        conversation, changed = apply_inbound(conversations.get(conversation_id), seen, message)
        if not seen:
            seen_messages[message.seen_key] = True
    else:
        change = unread_update_from(event)
        conversation_id, location_id = change.conversation_id, change.location_id
        conversation, changed = apply_unread_update(conversations.get(conversation_id), change)
    if not changed:
        return None
    conversations[conversation_id] = conversation
    location = unread_by_location(by_location.get(location_id), conversation_id, conversation)
    by_location[location_id] = location
    return conversation_id, conversation, location


FOLD = Fold(
    (CONVERSATIONS, SEEN_MESSAGES, UNREAD_BY_LOCATION), TYPES, update, family="conversations"
)
