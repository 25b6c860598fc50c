"""The pure parts of `streams dlq`: selecting dead letters, the re-driven copy's headers, the
markers that keep a dead letter from being re-driven twice, and showing one."""

from __future__ import annotations

import pytest

from streams.dlq import (
    REDRIVE_FAMILY,
    DeadLetter,
    Selection,
    ledger_from,
    marker_headers,
    parse_coordinates,
    redrive_headers,
    select,
    show,
)

RECORD_HEADERS = (
    ("webhook-id", b"wh-1"),
    ("event-type", b"InvoicePaid"),
    ("received-at", b"1700000000000"),
    ("source", b"import"),
    ("signature", b"ed25519"),
)


def letter(
    partition: int = 0,
    offset: int = 0,
    *,
    family: str = "payments",
    error: str = "BadRecord: amountPaid 'lots' is not a number",
    extra: tuple[tuple[str, bytes], ...] = (),
    value: bytes = b'{"_id": "inv-1", "amountPaid": "lots"}',
) -> DeadLetter:
    headers = (
        *RECORD_HEADERS,
        *extra,
        ("error", error.encode()),
        ("family", family.encode()),
        ("source-topic", b"ghl.webhooks.v1"),
        ("source-partition", b"2"),
        ("source-offset", b"41"),
    )
    return DeadLetter(partition, offset, b"L1", value, headers, 1_700_000_000_000)


def marker(of: DeadLetter, at: int) -> DeadLetter:
    headers = tuple(marker_headers(of, "ghl.webhooks.v1:2:99"))
    return DeadLetter(of.partition, at, of.key, b"", headers, 0)


def test_coordinates_are_partition_colon_offset() -> None:
    assert parse_coordinates("2:15") == (2, 15)
    for bad in ("2", "a:1", "1:-3", ""):
        with pytest.raises(ValueError, match="PARTITION:OFFSET"):
            parse_coordinates(bad)


def test_the_copy_keeps_the_records_own_headers_and_says_where_it_came_from() -> None:
    dead = letter(1, 7)
    headers = redrive_headers(dead)
    assert headers[: len(RECORD_HEADERS)] == list(RECORD_HEADERS)  # source=import stays silent
    assert dict(headers)["redriven-from"] == b"ghl.webhooks.dlq.v1:1:7"
    assert dict(headers)[REDRIVE_FAMILY] == b"payments"
    assert not {"error", "family", "source-topic", "source-offset"} & set(dict(headers))


def test_a_copy_that_failed_again_is_re_driven_with_fresh_provenance() -> None:
    again = letter(0, 12, extra=(("redriven-from", b"ghl.webhooks.dlq.v1:1:7"),))
    headers = redrive_headers(again)
    assert [v for k, v in headers if k == "redriven-from"] == [b"ghl.webhooks.dlq.v1:0:12"]
    assert again.summary()["redriven_from"] == "ghl.webhooks.dlq.v1:1:7"


def test_markers_are_not_dead_letters_and_record_what_was_re_driven() -> None:
    first, second = letter(0, 0), letter(0, 1, family="contacts")
    ledger = ledger_from([first, second, marker(first, 2)])
    assert ledger.letters == (first, second)
    assert ledger.state(first) == "re-driven to ghl.webhooks.v1:2:99"
    assert ledger.state(second) == "pending"


def test_selection_by_coordinates_family_error_or_all_never_twice_unless_asked() -> None:
    paid = letter(0, 0)
    contact = letter(1, 0, family="contacts", error="ContactCreate: id is required")
    published = DeadLetter(
        2,
        0,
        b"user:u1",
        b"{}",
        (("error", b"40160 not permitted"), ("source-topic", b"streams.derived.v1")),
        0,
    )
    ledger = ledger_from([paid, contact, published, marker(paid, 1)])
    assert published.family == "publisher"
    assert Selection().empty and not Selection(family="contacts").empty

    def chosen(selection: Selection, again: bool = False) -> list[DeadLetter]:
        return select(ledger, selection, again=again)[0]

    assert chosen(Selection(everything=True)) == [contact, published]
    assert select(ledger, Selection(everything=True))[1] == [paid]  # already re-driven
    assert chosen(Selection(everything=True), again=True) == [paid, contact, published]
    assert chosen(Selection(frozenset({(1, 0), (2, 0)}))) == [contact, published]
    assert chosen(Selection(family="publisher")) == [published]
    assert chosen(Selection(error="ID IS REQUIRED")) == [contact]
    assert chosen(Selection(family="payments", error="lots"), again=True) == [paid]
    assert chosen(Selection(family="contacts", error="lots")) == []


def test_show_prints_the_reason_the_headers_and_the_body() -> None:
    text = show(letter(3, 4), "pending")
    assert text.startswith("dead letter 3:4 on ghl.webhooks.dlq.v1 (pending)")
    assert "family: payments" in text and "source: ghl.webhooks.v1:2:41" in text
    assert '"amountPaid": "lots"' in text and "webhook-id: wh-1" in text
    garbage = show(letter(value=b"\x00not json"), "pending")
    assert "(not JSON, 9 bytes)" in garbage
