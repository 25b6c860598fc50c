from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from streams.events import (
    BadRecord,
    Event,
    event_type,
    iso_z,
    local_date,
    parse_time,
    record_headers,
    utc_millis,
)


def test_record_headers_round_trip_into_an_event() -> None:
    raw = b'{"type":"InboundMessage","locationId":"L","webhookId":"w-1"}'
    headers = record_headers(
        {"type": "InboundMessage", "locationId": "L", "webhookId": "w-1"},
        raw,
        source="import",
        signature="ed25519",
        received_at=1234,
    )
    event = Event.from_record(raw, headers, partition=3, offset=9)
    assert (event.type, event.webhook_id, event.received_at, event.source) == (
        "InboundMessage",
        "w-1",
        1234,
        "import",
    )
    assert (event.partition, event.offset, event.live) == (3, 9, False)


def test_webhook_id_falls_back_to_a_digest_of_the_exact_bytes() -> None:
    raw = b'{"type":"X"}'
    [(_, first), *_] = record_headers(
        {"type": "X"}, raw, source="live", signature="trusted", received_at=1
    )
    [(_, again), *_] = record_headers(
        {"type": "X"}, raw, source="live", signature="trusted", received_at=2
    )
    assert first == again and first.startswith(b"sha256:")


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        record_headers({}, b"{}", source="replay", signature="trusted", received_at=1)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_undecodable_or_non_object_bodies_are_bad_records(raw: bytes) -> None:
    with pytest.raises(BadRecord):
        Event.from_record(raw, [])


@pytest.mark.parametrize("received_at", [b"-1", b"99999999999999999999", b"noon"])
def test_a_received_at_header_that_is_no_time_is_a_bad_record(received_at: bytes) -> None:
    with pytest.raises(BadRecord, match="received-at"):
        Event.from_record(b'{"type": "X"}', [("received-at", received_at)])


def test_invoice_type_is_inferred_from_status_when_type_is_absent() -> None:
    assert event_type({"_id": "i", "amountPaid": 1, "status": "paid"}) == "InvoicePaid"
    assert event_type({"_id": "i", "amountPaid": 1, "status": "partially_paid"}) == (
        "InvoicePartiallyPaid"
    )
    assert event_type({"_id": "i", "amountPaid": 0, "status": "void"}) == "InvoiceVoid"
    assert event_type({"type": "ContactCreate"}) == "ContactCreate"
    assert event_type({"foo": 1}) == "Unknown"


def test_times_parse_with_z_offsets_or_none() -> None:
    assert parse_time("2025-05-19T12:48:50.972Z") == datetime(2025, 5, 19, 12, 48, 50, 972000, UTC)
    assert parse_time("2025-05-19T12:48:50") == datetime(2025, 5, 19, 12, 48, 50, tzinfo=UTC)
    assert parse_time("yesterday") is None
    # The calendar's first and last years: their UTC or local dates may not exist.
    assert parse_time("9999-12-31T23:59:59-01:00") is None
    assert parse_time("0001-01-01T00:00:00+14:00") is None
    assert parse_time("9998-12-31T23:59:59Z") == datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_time(1700000000) is None


def test_local_date_falls_back_to_utc_for_unknown_zones() -> None:
    moment = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert local_date(moment, "America/Chicago").isoformat() == "2026-03-01"
    assert local_date(moment, "Not/AZone").isoformat() == "2026-03-02"
    assert local_date(moment, None).isoformat() == "2026-03-02"


def test_a_records_received_at_header_is_read_when_it_is_a_number() -> None:
    from streams.events import received_at_header

    assert received_at_header([("source", b"live"), ("received-at", b"1700000000123")]) == (
        1_700_000_000_123
    )
    assert received_at_header([("received-at", b"soon")]) is None
    assert received_at_header(None) is None


def test_a_reading_is_worked_out_once_per_event_and_a_refusal_each_time() -> None:
    calls: list[str] = []

    def conversation(event: Event) -> str:
        calls.append(event.webhook_id)
        value = event.body.get("conversationId")
        if not isinstance(value, str):
            raise BadRecord("conversationId is required")
        return value

    good = Event("InboundMessage", {"conversationId": "c1"}, "w-1", 0, "live")
    assert good.once(conversation) == good.once(conversation) == "c1"
    other = Event("InboundMessage", {"conversationId": "c2"}, "w-2", 0, "live")
    assert other.once(conversation) == "c2"  # each event its own
    bad = Event("InboundMessage", {}, "w-3", 0, "live")
    for _ in range(2):
        with pytest.raises(BadRecord):
            bad.once(conversation)
    assert calls == ["w-1", "w-2", "w-3", "w-3"]
    assert good == Event("InboundMessage", {"conversationId": "c1"}, "w-1", 0, "live")


def test_utc_millis_writes_what_isoformat_writes_to_the_millisecond() -> None:
    rnd = random.Random(3)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    moments = [datetime(2, 1, 1, tzinfo=UTC), datetime(9998, 12, 31, 23, 59, 59, 999999, UTC)]
    for _ in range(5000):
        seconds = rnd.uniform(-6e10, 2.5e11)  # years 68 to 9892
        moments.append(datetime.fromtimestamp(seconds, rnd.choice(zones)))
    for moment in moments:
        expected = moment.astimezone(UTC).isoformat(timespec="milliseconds")
        assert utc_millis(moment) == expected.replace("+00:00", "Z")


def test_iso_z_writes_what_isoformat_writes_with_z_for_utc() -> None:
    rnd = random.Random(5)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), ZoneInfo("UTC"), None]
    moments = [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, 0, 1, UTC)]
    for _ in range(5000):
        moment = datetime.fromtimestamp(rnd.uniform(-6e10, 2.5e11), rnd.choice(zones))
        moments.append(moment.replace(microsecond=0) if rnd.random() < 0.5 else moment)
    for moment in moments:
        assert iso_z(moment) == moment.isoformat().replace("+00:00", "Z")
