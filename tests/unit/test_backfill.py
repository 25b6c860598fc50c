from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bson import Decimal128, ObjectId

from streams.backfill import LegacyLayout, UnusableDocument, to_incoming
from streams.codec import loads


def test_a_stored_json_text_body_is_kept_byte_for_byte() -> None:
    text = '{"type": "ContactCreate",  "locationId": "L1", "id": "c1"}'
    record = to_incoming(
        {
            "_id": ObjectId(),
            "body": text,
            "webhookId": "w1",
            "receivedAt": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        },
        LegacyLayout(),
    )
    assert record.body == text.encode()
    assert record.webhook_id == "w1"
    assert record.received_at == 1704164645000


def test_a_sub_document_body_becomes_json_with_bson_types_as_strings() -> None:
    document = {
        "_id": ObjectId(),
        "payload": {
            "_id": "inv1",
            "amountPaid": Decimal128("10.50"),
            "ref": ObjectId("65a1b2c3d4e5f60718293a4b"),
        },
        "kind": "InvoicePaid",
        "meta": {"id": "w9"},
        "at": 1704164645000,
    }
    layout = LegacyLayout(body="payload", type="kind", webhook_id="meta.id", received_at="at")
    record = to_incoming(document, layout)
    assert loads(record.body) == {
        "_id": "inv1",
        "amountPaid": "10.50",
        "ref": "65a1b2c3d4e5f60718293a4b",
    }
    assert (record.kind, record.webhook_id, record.received_at) == (
        "InvoicePaid",
        "w9",
        1704164645000,
    )


@pytest.mark.parametrize("body", [None, 42, "not json", "[1, 2]"])
def test_documents_without_a_usable_body_are_reported(body: object) -> None:
    with pytest.raises(UnusableDocument):
        to_incoming({"_id": 1, "body": body}, LegacyLayout())
