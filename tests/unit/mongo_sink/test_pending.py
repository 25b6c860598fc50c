"""`Pending`: a changelog partition followed on a replica store, turned into document writes.

The changelog here is made as the worker makes it (each changed key once per batch) from the real
folds over the generated traffic; the writes are applied to dicts with the writer's guard (a
document moves only forward), so these check the sink's logic without MongoDB (the integration
tests run it against a real server)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.codec import dumps
from streams.events import BadRecord
from streams.mongo_sink.documents import READ_MODELS, ReadModel, tables_of
from streams.mongo_sink.pending import Pending, Writes
from streams.runtime.store import POSITION, Store, store_key
from streams.tables.registry import PROJECTIONS
from tests.traffic import generate
from tests.unit.events import event

SINKABLE = ("revenue", "unread", "leads", "pipeline", "appointments")
MODELS = [(m, m.versioned(1)) for m in READ_MODELS]
Db = dict[str, dict[str, dict[str, Any]]]


@dataclass
class Record:
    key: bytes
    value: bytes | None
    offset: int
    timestamp: int = 1_700_000_000_000


def changelog(bodies: list[dict[str, Any]], batch: int = 50) -> tuple[list[Record], dict]:
    """The changelog of folding `bodies` in batches, and the tables at the end."""
    tables: dict[str, dict[Any, Any]] = {t: {} for p in PROJECTIONS for t in p.tables}
    records: list[Record] = []
    for start in range(0, len(bodies), batch):
        before = copy.deepcopy(tables)
        for body in bodies[start : start + batch]:
            ev = event(body)
            for projection in PROJECTIONS:
                with contextlib.suppress(BadRecord):
                    projection.update(tables, ev)
        for name, rows in tables.items():
            for key in set(rows) | set(before[name]):
                if rows.get(key) != before[name].get(key):
                    value = rows.get(key)
                    raw = None if value is None else dumps(value)
                    records.append(Record(store_key(name, key), raw, len(records)))
        # Each batch's position in the raw log, as the worker commits it: not a table's row.
        records.append(Record(POSITION, dumps(start + batch), len(records)))
    return records, tables


def apply(db: Db, writes: dict[str, Writes], offset: int) -> None:
    """What the writer does, on dicts: guarded replaces and deletes (a document moves only if
    it reflects the same or an older position)."""
    for name, w in writes.items():
        rows = db.setdefault(name, {})
        for i, doc in w.inserts.items():
            if (
                i not in rows or rows[i]["_offset"] <= offset
            ):  # else, as the writer does, the guarded replace below
                rows[i] = {**doc, "_offset": offset}
        for i, doc in w.upserts.items():
            if rows.get(i, {}).get("_offset", -1) <= offset:
                rows[i] = {**doc, "_offset": offset}
        for i in w.deletes:
            if i in rows and rows[i]["_offset"] <= offset:
                del rows[i]
        for location, kept in w.locations.items():
            for i in [i for i, d in rows.items() if d["location_id"] == location]:
                if i not in kept and rows[i]["_offset"] <= offset:
                    del rows[i]


def expected(tables: dict[str, dict[Any, Any]]) -> Db:
    locations = {loc for m in READ_MODELS for loc in _location_keys(tables, m)}
    return {
        name: {i: d for loc in locations for i, d in m.documents(tables, loc).items()}
        for m, name in MODELS
    }


def _location_keys(tables: dict[str, dict[Any, Any]], model: ReadModel) -> set[str]:
    return {loc for t in tables_of([model.projection]) if t != "contacts" for loc in tables[t]}


def without_offsets(db: Db) -> Db:
    return {
        name: {i: {k: v for k, v in d.items() if k != "_offset"} for i, d in rows.items()}
        for name, rows in db.items()
    }


def follow_from(pending: Pending, records: list[Record], db: Db, batch: int = 500) -> None:
    for start in range(0, len(records), batch):
        pending.add(records[start : start + batch])
        assert pending.next_offset is not None
        apply(db, pending.writes(), pending.next_offset - 1)
        pending.stored()
        pending.caught_up()


def follow(store: Store, records: list[Record], db: Db, batch: int = 200) -> None:
    follow_from(Pending(store, tables_of(SINKABLE), MODELS), records, db, batch)


@pytest.fixture(scope="module")
def stream() -> tuple[list[Record], dict]:
    return changelog(generate(2_000, locations=5, pipeline=True))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "replica")
    yield s
    s.close()


def test_following_the_changelog_leaves_every_document_of_the_final_state(store, stream) -> None:
    records, tables = stream
    db: Db = {}
    follow(store, records, db)
    want = expected(tables)
    assert sum(len(rows) for rows in want.values()) > 50
    assert without_offsets(db) == {name: rows for name, rows in want.items() if rows or name in db}
    assert store.checkpoint == len(records)


def test_deleted_rows_leave_mongodb(store, stream) -> None:
    """Unread conversations read to zero and cancelled appointments leave their collection."""
    records, tables = stream
    db: Db = {}
    follow(store, records[: len(records) // 2], db)
    halfway = {name: set(rows) for name, rows in db.items()}
    follow(store, records[len(records) // 2 :], db)
    gone = {name: ids - set(db.get(name, {})) for name, ids in halfway.items()}
    assert any(gone.values()), "the traffic reads some conversations back to zero"
    assert without_offsets(db) == {n: r for n, r in expected(tables).items() if r or n in db}


def test_a_batch_read_again_after_a_crash_changes_nothing(store, stream) -> None:
    records, tables = stream
    db: Db = {}
    follow(store, records[:300], db)
    pending = Pending(store, tables_of(SINKABLE), MODELS)
    pending.add(records[300:600])
    apply(db, pending.writes(), 599)  # MongoDB took it; the replica did not (a kill -9)
    replica_then = store.checkpoint
    pending = Pending(store, tables_of(SINKABLE), MODELS)  # the restart, from the replica
    assert store.checkpoint == replica_then == 300
    pending.add(records[300:600])
    snapshot = copy.deepcopy(db)
    apply(db, pending.writes(), 599)
    assert db == snapshot
    pending.stored()
    follow(store, records[600:], db)
    assert without_offsets(db) == {n: r for n, r in expected(tables).items() if r or n in db}


def test_only_what_changed_is_written(store, stream) -> None:
    records, _ = stream
    db: Db = {}
    follow(store, records[:-1], db)
    pending = Pending(store, tables_of(SINKABLE), MODELS)
    pending.caught_up()  # past its first write: it knows what MongoDB holds
    pending.add(records[-1:])
    written = sum(
        len(w.inserts) + len(w.upserts) + len(w.deletes) for w in pending.writes().values()
    )
    assert written <= 3, "one record changes a handful of documents, not its location's all"


def test_documents_mongodb_does_not_hold_yet_are_inserted(store, stream) -> None:
    records, _ = stream
    db: Db = {}
    half = len(records) // 2
    follow(store, records[:half], db)
    pending = Pending(store, tables_of(SINKABLE), MODELS)
    pending.caught_up()
    pending.add(records[half:])
    writes = pending.writes()
    inserted = {(name, i) for name, w in writes.items() for i in w.inserts}
    replaced = {(name, i) for name, w in writes.items() for i in w.upserts}
    assert inserted and replaced
    assert not any(i in db.get(name, {}) for name, i in inserted)
    assert all(i in db[name] for name, i in replaced)


def test_a_fresh_replica_replaces_what_mongodb_held_of_each_location(tmp_path, stream) -> None:
    """MongoDB holds documents from an earlier replica (lost with its disk): a new replica
    rewrites each location's documents and deletes the ones the state no longer has."""
    records, tables = stream
    db: Db = {}
    stale = {"location_id": "loc1", "conversation_id": "gone", "unread": 9, "_offset": -1}
    db["unread_conversations_v1"] = {"loc1|gone": stale}
    fresh = Store(tmp_path / "fresh")
    try:
        pending = Pending(fresh, tables_of(SINKABLE), MODELS)
        assert pending.fresh
        pending.add(records)
        writes = pending.writes()
        assert "loc1" in writes["unread_conversations_v1"].locations
        # It cannot know which documents MongoDB holds: none is written as new.
        assert not any(w.inserts for w in writes.values())
        apply(db, writes, len(records) - 1)
    finally:
        fresh.close()
    assert "loc1|gone" not in db["unread_conversations_v1"]
    assert without_offsets(db) == {n: r for n, r in expected(tables).items() if r or n in db}


def test_a_write_cut_by_a_kill_is_repaired_by_the_first_write_after_the_restart(
    store, stream
) -> None:
    """A kill -9 between two bulks leaves some documents newer than MongoDB's position, and the
    replica (its writes were not flushed) older: the restarted partition's first write rewrites
    every location it reads, so nothing stays at the cut write's state."""
    records, tables = stream
    db: Db = {}
    follow(store, records[:300], db)
    cut = Pending(store, tables_of(SINKABLE), MODELS)
    cut.caught_up()
    cut.add(records[300:700])
    writes = cut.writes()
    first = next(iter(writes))
    apply(db, {first: writes[first]}, 699)  # one collection written, then the kill
    restarted = Pending(store, tables_of(SINKABLE), MODELS)
    assert restarted.fresh and store.checkpoint == 300
    follow_from(restarted, records[300:], db)
    assert without_offsets(db) == {n: r for n, r in expected(tables).items() if r or n in db}
