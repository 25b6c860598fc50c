from __future__ import annotations

import pytest

from streams.events import BadRecord
from streams.tables.unread import (
    Conversation,
    UnreadByConversation,
    apply_inbound,
    apply_unread_update,
    inbound_from,
    unread_by_location,
    unread_update_from,
)
from tests.unit.events import event


def inbound(message_id: str | None, conversation: str = "conv-1", **extra: object):
    body = {
        "type": "InboundMessage",
        "locationId": "loc-1",
        "conversationId": conversation,
        "contactId": "contact-1",
        "body": "hello",
        "messageType": "SMS",
        "dateAdded": "2026-03-01T10:00:00Z",
        **extra,
    }
    if message_id is not None:
        body["messageId"] = message_id
    return event(body)


def unread_update(count: object, conversation: str = "conv-1"):
    return event(
        {
            "type": "ConversationUnreadUpdate",
            "locationId": "loc-1",
            "id": conversation,
            "contactId": "contact-1",
            "unreadCount": count,
        }
    )


def fold(events: list) -> tuple[dict[str, Conversation], UnreadByConversation]:
    """The agent's loop, in memory: conversations, seen message ids, the location's map."""
    conversations: dict[str, Conversation] = {}
    seen: set[str] = set()
    location: UnreadByConversation = {}
    for e in events:
        if e.type == "InboundMessage":
            message = inbound_from(e)
            conv = message.conversation_id
            conversations[conv], _ = apply_inbound(
                conversations.get(conv), message.seen_key in seen, message
            )
            seen.add(message.seen_key)
        else:
            update = unread_update_from(e)
            conv = update.conversation_id
            conversations[conv], _ = apply_unread_update(conversations.get(conv), update)
        location = unread_by_location(location, conv, conversations[conv])
    return conversations, location


def test_new_inbound_messages_add_one_each_and_duplicates_nothing() -> None:
    m1 = inbound("m1")
    conversations, location = fold([m1, inbound("m2"), m1, inbound("m1"), inbound("m3")])
    assert conversations["conv-1"]["unread"] == 3
    assert location == {"conv-1": {"unread": 3, "contact": "contact-1"}}


def test_unread_update_sets_the_count_in_log_order() -> None:
    conversations, location = fold([inbound("m1"), inbound("m2"), unread_update(0), inbound("m3")])
    assert conversations["conv-1"]["unread"] == 1
    conversations, location = fold([inbound("m1"), unread_update(7)])
    assert location == {"conv-1": {"unread": 7, "contact": "contact-1"}}


def test_a_read_conversation_leaves_the_location_map() -> None:
    _, location = fold([inbound("a", "c1"), inbound("b", "c2"), unread_update(0, "c1")])
    assert location == {"c2": {"unread": 1, "contact": "contact-1"}}


def test_changed_flag_says_whether_the_count_moved() -> None:
    message = inbound_from(inbound("m1"))
    conversation, changed = apply_inbound(None, False, message)
    assert changed and conversation["unread"] == 1
    assert apply_inbound(conversation, True, message) == (conversation, False)
    same, changed = apply_unread_update(conversation, unread_update_from(unread_update(1)))
    assert not changed and same["unread"] == 1


def test_a_message_without_message_id_is_identified_by_its_webhook() -> None:
    redelivered = inbound(None)
    conversations, _ = fold([redelivered, redelivered, inbound(None)])
    assert conversations["conv-1"]["unread"] == 2


@pytest.mark.parametrize("count", [-1, "3", 2.5, True, None])
def test_malformed_unread_count_is_a_bad_record(count: object) -> None:
    with pytest.raises(BadRecord, match="unreadCount"):
        unread_update_from(unread_update(count))


def test_inbound_without_conversation_is_a_bad_record() -> None:
    with pytest.raises(BadRecord, match="conversationId"):
        inbound_from(event({"type": "InboundMessage", "locationId": "loc-1", "messageId": "m"}))
