from __future__ import annotations

from typing import Any

import pytest

from streams.events import BadRecord
from streams.tables import message_status
from tests.unit.events import event


def outbound(status: str, **fields: Any) -> Any:
    body = {
        "type": "OutboundMessage",
        "locationId": "loc-1",
        "conversationId": "conv-1",
        "contactId": "c-1",
        "messageId": "m-1",
        "messageType": "SMS",
        "direction": "outbound",
        "userId": "u-1",
        "status": status,
    }
    return event({**body, **fields})


def fold(*events: Any) -> tuple[dict[str, dict[Any, Any]], list[Any]]:
    tables: dict[str, dict[Any, Any]] = {message_status.MESSAGE_STATUS: {}}
    return tables, [message_status.update(tables, e) for e in events]


def statuses(changes: list[Any]) -> list[tuple[str | None, str] | None]:
    return [None if c is None else (c.previous, c.receipt.status) for c in changes]


def test_a_status_moves_forward_through_a_messages_life() -> None:
    tables, changes = fold(outbound("sent"), outbound("delivered"), outbound("read"))
    assert statuses(changes) == [(None, "sent"), ("sent", "delivered"), ("delivered", "read")]
    assert tables[message_status.MESSAGE_STATUS] == {
        "loc-1/m-1": {"status": "read", "user_id": "u-1"}
    }


def test_a_redelivery_or_a_late_webhook_never_moves_it_back() -> None:
    tables, changes = fold(
        outbound("delivered"), outbound("delivered"), outbound("sent"), outbound("read")
    )
    assert statuses(changes) == [(None, "delivered"), None, None, ("delivered", "read")]
    # Out of order: read first, then the delivered HighLevel sent before it.
    tables, changes = fold(outbound("read"), outbound("delivered"), outbound("queued"))
    assert statuses(changes) == [(None, "read"), None, None]
    assert tables[message_status.MESSAGE_STATUS]["loc-1/m-1"]["status"] == "read"


def test_outcomes_of_the_same_rank_keep_the_first() -> None:
    _, changes = fold(outbound("failed"), outbound("delivered"), outbound("opened"))
    assert statuses(changes) == [(None, "failed"), None, ("failed", "opened")]


def test_each_message_has_its_own_status_and_keeps_its_first_sender() -> None:
    tables, changes = fold(
        outbound("sent"),
        outbound("sent", messageId="m-2", userId="u-2"),
        outbound("delivered", userId=None),
    )
    assert [c.user_id for c in changes] == ["u-1", "u-2", "u-1"]
    assert set(tables[message_status.MESSAGE_STATUS]) == {"loc-1/m-1", "loc-1/m-2"}


def test_calls_and_webhooks_without_a_status_are_no_receipts() -> None:
    _, changes = fold(
        outbound("completed", messageType="CALL"), outbound("voicemail"), outbound("SENT")
    )
    assert statuses(changes) == [None, None, (None, "sent")]
    _, changes = fold(event({"type": "OutboundMessage", "locationId": "loc-1"}))
    assert changes == [None]


def test_a_status_without_its_message_id_is_refused_with_the_reason() -> None:
    with pytest.raises(BadRecord, match="messageId"):
        fold(outbound("sent", messageId=None))
