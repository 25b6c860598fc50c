"""`streams.agents.family`: the one processing path, on a real `PartitionState` (a tmp_path
store) with made-up families and fake raw records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streams import metrics
from streams.agents.family import Family, Processor, headers_and_type, projection_families
from streams.codec import dumps
from streams.dlq import REDRIVE_FAMILY
from streams.events import BadRecord, Event
from streams.runtime.state import PartitionState
from streams.runtime.store import Store
from streams.runtime.transaction import Effects
from streams.tables.projection import Projection, Tables
from streams.tables.registry import PROJECTIONS
from streams.topics import RAW_WEBHOOKS, RECORD_MAX_BYTES
from tests.unit.events import event, invoice


@dataclass
class Rec:
    """What the processor reads of an aiokafka ConsumerRecord."""

    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    key: bytes | None = b"loc-1"
    partition: int = 3
    offset: int = 0


def rec(kind: str, offset: int, *, source: str = "live", **body: Any) -> Rec:
    headers = [
        ("webhook-id", f"wh-{offset}".encode()),
        ("event-type", kind.encode()),
        ("received-at", b"1700000000000"),
        ("source", source.encode()),
    ]
    return Rec(dumps({"type": kind, **body}), headers, offset=offset)


class Crash(RuntimeError):
    """A fault of the program, not of a record."""


def family(name: str, types: set[str], calls: list[tuple[str, int]]) -> Family:
    """Writes `log[name/offset]`, then fails as the body's `fail` asks for this family."""

    def make(tables: Tables) -> Any:
        def handle(e: Event) -> list[dict[str, Any]]:
            calls.append((name, e.offset))
            tables["log"][f"{name}/{e.offset}"] = e.type
            tables["count"][name] = tables["count"].get(name, 0) + 1
            fail = e.body.get("fail", {}).get(name)
            if fail == "bad":
                raise BadRecord(f"{name} cannot use it")
            if fail == "key":
                raise KeyError("amount")
            if fail == "crash":
                raise Crash("disk on fire")
            return [{"name": f"{name}-did", "channel": "loc-1", "offset": e.offset}]

        return handle

    return name, types, make


@pytest.fixture
def state(tmp_path: Path) -> Iterator[PartitionState]:
    store = Store(tmp_path / "p3")
    yield PartitionState(store, ("log", "count"))
    store.close()


@pytest.fixture
def calls() -> list[tuple[str, int]]:
    return []


def processor(
    state: PartitionState, calls: list[tuple[str, int]], *, live: bool = True
) -> Processor:
    families = [family("alpha", {"Ping", "Pong"}, calls), family("beta", {"Ping"}, calls)]
    return Processor(families, state, live=live, label="v-test")


def log(state: PartitionState) -> dict[str, Any]:
    return dict(state.tables["log"].items())


def test_a_record_is_folded_by_every_owning_family_in_order(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    processor(state, calls).process([rec("Ping", 0), rec("Pong", 1), rec("Ping", 2)], effects)
    assert calls == [("alpha", 0), ("beta", 0), ("alpha", 1), ("alpha", 2), ("beta", 2)]
    assert log(state) == {
        "alpha/0": "Ping",
        "beta/0": "Ping",
        "alpha/1": "Pong",
        "alpha/2": "Ping",
        "beta/2": "Ping",
    }
    assert [(d["name"], d["offset"]) for d in effects.derived] == [
        ("alpha-did", 0),
        ("beta-did", 0),
        ("alpha-did", 1),
        ("alpha-did", 2),
        ("beta-did", 2),
    ]
    assert effects.dead_letters == []


def test_a_bad_record_is_dead_lettered_once_and_only_its_familys_writes_roll_back(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    record = rec("Ping", 7, fail={"beta": "bad"})
    processor(state, calls).process([record], effects)
    assert calls == [("alpha", 7), ("beta", 7)]
    assert log(state) == {"alpha/7": "Ping"}  # beta's write is gone, alpha's stays
    assert dict(state.tables["count"].items()) == {"alpha": 1}
    assert len(effects.dead_letters) == 1
    key, value, headers = effects.dead_letters[0]
    assert (key, value) == (record.key, record.value)
    meta = dict(headers)
    assert meta["error"] == b"beta cannot use it"
    assert meta["family"] == b"beta"
    assert meta["source-topic"] == RAW_WEBHOOKS.name.encode()
    assert meta["source-partition"] == b"3"
    assert meta["source-offset"] == b"7"
    assert meta["event-type"] == b"Ping"  # the record's own headers travel along
    assert [d["name"] for d in effects.derived] == ["alpha-did"]  # none from the failed fold


def test_a_bug_in_a_fold_stops_the_batch_instead_of_dead_lettering_the_record(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    # A KeyError in a handler is a bug in the handler, not a fault of the record: dead-lettering
    # would silently drop the family's traffic until the fix. It propagates (the worker stops
    # without committing), and the record's writes are rolled back.
    effects = Effects()
    with pytest.raises(KeyError):
        processor(state, calls).process([rec("Pong", 1, fail={"alpha": "key"})], effects)
    assert effects.dead_letters == []
    assert log(state) == {}


def test_an_undecodable_record_is_dead_lettered_by_each_owning_family(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    broken = Rec(b"{not json", [("event-type", b"Ping")], offset=4)
    processor(state, calls).process([broken], effects)
    assert calls == []
    assert sorted(dict(h)["family"] for _, _, h in effects.dead_letters) == [b"alpha", b"beta"]


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b"", None])
def test_no_type_and_no_json_object_is_dead_lettered_as_unknown(
    state: PartitionState, calls: list[tuple[str, int]], body: bytes | None
) -> None:
    effects = Effects()
    processor(state, calls).process([Rec(body, offset=9)], effects)
    assert calls == []
    ((key, value, headers),) = effects.dead_letters
    assert (key, value) == (b"loc-1", body or b"")
    meta = dict(headers)
    assert meta["family"] == b"unknown"
    assert meta["source-offset"] == b"9"
    assert b"event-type" in meta["error"]


def test_the_type_comes_from_the_body_when_there_is_no_header(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    processor(state, calls).process([Rec(dumps({"type": "Pong"}), offset=2)], effects)
    assert calls == [("alpha", 2)]
    assert effects.dead_letters == []


def test_a_type_nobody_owns_is_neither_folded_nor_dead_lettered(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    processor(state, calls).process([rec("Nobody", 0), Rec(dumps({"no": "type"}))], effects)
    assert calls == []
    assert not effects
    assert state.changes == {}


def test_a_redriven_record_is_folded_only_by_its_family(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    record = rec("Ping", 5)
    record.headers.append((REDRIVE_FAMILY, b"beta"))
    effects = Effects()
    processor(state, calls).process([record], effects)
    assert calls == [("beta", 5)]
    assert log(state) == {"beta/5": "Ping"}
    assert [d["name"] for d in effects.derived] == ["beta-did"]


def test_a_record_redriven_for_a_family_that_does_not_own_it_is_folded_by_none(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    record = rec("Pong", 5)
    record.headers.append((REDRIVE_FAMILY, b"beta"))
    processor(state, calls).process([record], Effects())
    assert calls == []


def test_derived_events_only_from_live_records_in_a_live_processor(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    processor(state, calls).process(
        [rec("Pong", 0, source="import"), rec("Pong", 1, source="backfill"), rec("Pong", 2)],
        effects,
    )
    assert calls == [("alpha", 0), ("alpha", 1), ("alpha", 2)]  # all folded
    assert [d["offset"] for d in effects.derived] == [2]  # only the live one emits


def test_derived_events_are_counted_by_name_once_each(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    def derived(name: str) -> float:
        return metrics.counted("streams_derived_events_total", name=name)

    before = derived("alpha-did"), derived("beta-did")
    effects = Effects()
    effects.derive([{"name": "alpha-did", "channel": "x"}], None)  # an earlier batch's: not again
    batch = [rec("Ping", 0), rec("Pong", 1), rec("Ping", 2, source="import")]
    processor(state, calls).process(batch, effects)
    assert (derived("alpha-did") - before[0], derived("beta-did") - before[1]) == (2, 1)


def test_a_replay_folds_but_neither_emits_nor_dead_letters(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    processor(state, calls, live=False).process(
        [rec("Ping", 0), rec("Ping", 1, fail={"beta": "bad"}), Rec(b"[]", offset=2)], effects
    )
    assert calls == [("alpha", 0), ("beta", 0), ("alpha", 1), ("beta", 1)]
    assert log(state) == {"alpha/0": "Ping", "beta/0": "Ping", "alpha/1": "Ping"}
    assert effects.derived == [] and effects.dead_letters == []


def test_an_error_that_is_not_the_records_content_propagates(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    with pytest.raises(Crash):
        processor(state, calls).process(
            [rec("Ping", 0), rec("Ping", 1, fail={"alpha": "crash"})], effects
        )
    assert effects.dead_letters == []
    assert "alpha/1" not in log(state)  # its record's writes were rolled back too


def test_headers_and_type() -> None:
    headers, kind = headers_and_type(Rec(dumps({"type": "Body"}), [("event-type", b"Header")]))
    assert (headers, kind) == ({"event-type": b"Header"}, "Header")
    assert headers_and_type(Rec(dumps({"type": "Body"}), [])) == ({}, "Body")
    assert headers_and_type(Rec(dumps({"x": 1}), None))[1] == "Unknown"  # type: ignore[arg-type]
    assert headers_and_type(Rec(b"[]"))[1] == ""
    assert headers_and_type(Rec(None))[1] == ""


# -- a real projection, run as families ---------------------------------------------------------


def as_record(e: Event, offset: int) -> Rec:
    headers = [
        ("webhook-id", e.webhook_id.encode()),
        ("event-type", e.type.encode()),
        ("received-at", str(e.received_at).encode()),
        ("source", e.source.encode()),
    ]
    return Rec(dumps(e.body), headers, partition=0, offset=offset)


def by_name(name: str) -> Projection:
    return next(p for p in PROJECTIONS if p.name == name)


CASES = {
    "revenue": [
        event({"type": "LocationSettingsUpdated", "locationId": "loc-1", "timezone": "Asia/Tokyo"}),
        invoice("partially_paid", 10, at="2026-03-01T20:00:00Z"),
        invoice("partially_paid", 10),  # a redelivery
        invoice("paid", 25.5, at="2026-03-02T10:00:00Z"),
        invoice("paid", 7, invoice_id="inv-2", currency="EUR"),
        invoice("void", 0, invoice_id="inv-2", currency="EUR"),
    ],
    "unread": [
        event({"type": "ContactCreate", "locationId": "L", "id": "c1", "assignedTo": "u1"}),
        event(
            {
                "type": "InboundMessage",
                "locationId": "L",
                "conversationId": "v1",
                "messageId": "m1",
                "contactId": "c1",
            }
        ),
        event(
            {"type": "InboundMessage", "locationId": "L", "conversationId": "v1", "messageId": "m1"}
        ),
        event(
            {
                "type": "InboundMessage",
                "locationId": "L",
                "conversationId": "v2",
                "messageId": "m2",
                "contactId": "c1",
            }
        ),
        invoice("paid", 5, location="L"),  # not unread's: ignored
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_projection_families_fold_as_the_projection_and_emit_nothing(
    tmp_path: Path, name: str
) -> None:
    projection = by_name(name)
    events = CASES[name]
    expected: dict[str, dict[Any, Any]] = {t: {} for t in projection.tables}
    for e in events:
        projection.update(expected, e)
    assert any(expected.values())  # the cases do fold something

    path = tmp_path / name
    store = Store(path)
    state = PartitionState(store, projection.tables)
    runner = Processor(projection_families(projection.folds), state, live=True, label=name)
    for offset, e in enumerate(events):  # one batch per record, committed as a task does
        effects = Effects()
        runner.process([as_record(e, offset)], effects)
        assert not effects
        store.write(state.seal(), offset + 1)
        state.sealed_stored()
    store.close()

    reopened = Store(path)  # no cache: what is on disk
    try:
        tables = PartitionState(reopened, projection.tables).tables
        assert {t: dict(tables[t].items()) for t in projection.tables} == expected
    finally:
        reopened.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_projection_families_in_one_batch_fold_as_the_projection(tmp_path: Path, name: str) -> None:
    projection = by_name(name)
    expected: dict[str, dict[Any, Any]] = {t: {} for t in projection.tables}
    for e in CASES[name]:
        projection.update(expected, e)
    store = Store(tmp_path / name)
    try:
        state = PartitionState(store, projection.tables)
        effects = Effects()
        Processor(projection_families(projection.folds), state, live=False, label=name).process(
            [as_record(e, i) for i, e in enumerate(CASES[name])], effects
        )
        assert not effects
        assert {t: dict(state.tables[t].items()) for t in projection.tables} == expected
    finally:
        store.close()


def test_a_dead_letter_kafka_would_refuse_keeps_its_source_position_not_its_body(
    state: PartitionState, calls: list[tuple[str, int]]
) -> None:
    effects = Effects()
    huge = rec("Ping", 9, fail={"beta": "bad"}, padding="x" * RECORD_MAX_BYTES)
    normal = rec("Ping", 10, fail={"beta": "bad"})
    processor(state, calls).process([huge, normal], effects)
    (_, too_big, headers), (_, kept, _) = effects.dead_letters
    meta = dict(headers)
    assert too_big == b"" and kept == normal.value
    assert meta["body-omitted"] == f"{len(huge.value or b'')} bytes".encode()
    assert meta["source-offset"] == b"9" and meta["error"] == b"beta cannot use it"


def test_a_long_reason_is_cut_to_a_readable_length(state: PartitionState) -> None:
    def make(tables: Tables) -> Any:
        def handle(e: Event) -> list[dict[str, Any]]:
            raise BadRecord("amount is not a number: " + "9" * 50_000)

        return handle

    effects = Effects()
    Processor([("gamma", {"Ping"}, make)], state, live=True, label="t").process(
        [rec("Ping", 1)], effects
    )
    ((_, _, headers),) = effects.dead_letters
    reason = dict(headers)["error"]
    assert reason.startswith(b"amount is not a number: 999") and len(reason) == 1003


def test_derived_records_carry_when_their_webhook_was_received() -> None:
    from streams.runtime.transaction import Effects, _derived

    effects = Effects()
    effects.derive([{"channel": "user:u1", "id": "a:0"}], 1_700_000_000_123)
    effects.derive([{"channel": "user:u2", "id": "b:0"}], None)  # a reminder: no webhook
    (first, second) = list(_derived(effects))
    assert first[0] == b"user:u1" and first[2] == [("received-at", b"1700000000123")]
    assert second[0] == b"user:u2" and second[2] == []
