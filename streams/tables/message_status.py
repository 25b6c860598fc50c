"""Read receipts: each outbound message's delivery status, which only ever moves forward.

HighLevel states an outbound message's `status` in its `OutboundMessage` webhooks (`pending`,
`queued`, `scheduled`, `sent`, `delivered`, `read`, `opened`, `clicked`, `failed`,
`undelivered`, `opt_out`); a later webhook for the same `messageId` states it again. Statuses are
ranked along a message's life: queued < sent < delivered (or failed, undelivered, opted out) <
read (opened) < clicked. A status at or below the one held changes nothing, so a redelivery or a
late webhook never moves a receipt backwards; a call's statuses (`completed`, `voicemail`) are
not receipts and are ignored.

Table: `message_status` ("{location}/{message}" -> MessageStatus).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from streams.events import BadRecord, Event
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "MESSAGE_STATUS",
    "OUTBOUND_TYPE",
    "STATUS_RANK",
    "MessageStatus",
    "Receipt",
    "StatusChange",
    "advance",
    "receipt_from",
    "update",
]

MESSAGE_STATUS = "message_status"
OUTBOUND_TYPE = "OutboundMessage"
STATUS_RANK = {
    "pending": 0,
    "queued": 0,
    "scheduled": 0,
    "sent": 1,
    "delivered": 2,
    "failed": 2,
    "undelivered": 2,
    "opt_out": 2,
    "read": 3,
    "opened": 3,
    "clicked": 4,
}


class MessageStatus(TypedDict):
    status: str
    user_id: str | None


@dataclass(frozen=True, slots=True)
class Receipt:
    location_id: str
    message_id: str
    conversation_id: str | None
    contact_id: str | None
    user_id: str | None
    message_type: str | None
    status: str

    @property
    def key(self) -> str:
        return f"{self.location_id}/{self.message_id}"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def receipt_from(event: Event) -> Receipt | None:
    """The receipt an outbound message webhook states; None when it states no receipt status."""
    body = event.body
    status = body.get("status")
    if not isinstance(status, str) or status.lower() not in STATUS_RANK:
        return None
    message_id = _text(body.get("messageId"))
    if event.location_id is None or message_id is None:
        raise BadRecord(f"{event.type}: locationId and messageId are required for a status")
    return Receipt(
        location_id=event.location_id,
        message_id=message_id,
        conversation_id=_text(body.get("conversationId")),
        contact_id=_text(body.get("contactId")),
        user_id=_text(body.get("userId")),
        message_type=_text(body.get("messageType")),
        status=status.lower(),
    )


def advance(held: MessageStatus | None, receipt: Receipt) -> MessageStatus | None:
    """The message's status after `receipt`; None when it does not move it forward."""
    if held is not None and STATUS_RANK[receipt.status] <= STATUS_RANK[held["status"]]:
        return None
    # The sender is whoever a webhook of the message named first (later ones may omit it).
    user = (held["user_id"] if held else None) or receipt.user_id
    return {"status": receipt.status, "user_id": user}


@dataclass(frozen=True, slots=True)
class StatusChange:
    receipt: Receipt
    previous: str | None
    user_id: str | None


def update(tables: Tables, event: Event) -> StatusChange | None:
    """Fold an outbound message webhook; the change of status, if any."""
    receipt = receipt_from(event)
    if receipt is None:
        return None
    table = tables[MESSAGE_STATUS]
    held = table.get(receipt.key)
    moved = advance(held, receipt)
    if moved is None:
        return None
    table[receipt.key] = moved
    return StatusChange(receipt, held["status"] if held else None, moved["user_id"])


FOLD = Fold((MESSAGE_STATUS,), frozenset({OUTBOUND_TYPE}), update, family="messages")
