"""`Store`: one partition's tables and checkpoint in one RocksDB, on a tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rocksdict import DBCompressionType, Options, Rdict

from streams.codec import dumps
from streams.runtime.store import POSITION, Store, store_key


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "p0")
    yield s
    s.close()


def put(table: str, key: Any, value: Any) -> tuple[bytes, bytes | None, Any]:
    """One change as `Store.write` takes it."""
    return store_key(table, key), None if value is None else dumps(value), value


def test_a_missing_key_reads_as_none(store: Store) -> None:
    assert store.get(store_key("t", "nope")) is None


def test_a_written_value_reads_back(store: Store) -> None:
    store.write([put("t", "k", {"n": 1})], 5)
    assert store.get(store_key("t", "k")) == {"n": 1}


def test_a_deletion_removes_the_row(store: Store) -> None:
    store.write([put("t", "k", {"n": 1})], 1)
    store.write([(store_key("t", "k"), None, None)], 2)
    assert store.get(store_key("t", "k")) is None
    assert list(store.items("t")) == []


def test_items_yield_one_table_decoded_in_key_order(store: Store) -> None:
    store.write(
        [
            put("ab", "x", 100),
            put("a", "c", 3),
            put("a", "a", {"one": 1}),
            put("b", "a", 200),
            put("a", "b", [2]),
        ],
        1,
    )
    assert list(store.items("a")) == [("a", {"one": 1}), ("b", [2]), ("c", 3)]
    assert list(store.items("ab")) == [("x", 100)]
    assert list(store.items("missing")) == []


def test_checkpoint_is_none_on_a_fresh_store_and_moves_with_write(store: Store) -> None:
    assert store.checkpoint is None
    store.write([put("t", "k", 1)], 7)
    assert store.checkpoint == 7
    store.write([put("t", "k", 2)], 9)
    assert store.checkpoint == 9


def test_checkpoint_and_data_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    first = Store(path)
    first.write([put("t", "k", {"v": 1})], 42)
    first.close()
    again = Store(path)
    try:
        assert again.checkpoint == 42
        assert again.get(store_key("t", "k")) == {"v": 1}
    finally:
        again.close()


def test_write_without_checkpoint_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    first = Store(path)
    first.write([put("t", "a", 1)], 3)
    first.write([put("t", "b", 2)], None)
    assert first.checkpoint == 3
    first.close()
    again = Store(path)
    try:
        assert again.checkpoint == 3
        assert again.get(store_key("t", "b")) == 2
    finally:
        again.close()


def test_the_cache_never_serves_a_stale_value(store: Store) -> None:
    key = store_key("t", "k")
    store.write([put("t", "k", "first")], 1)
    assert store.get(key) == "first"
    store.write([put("t", "k", "second")], 2)
    assert store.get(key) == "second"
    store.write([(key, None, None)], 3)
    assert store.get(key) is None
    store.write([put("t", "k", "third")], 4)
    assert store.get(key) == "third"


def test_a_miss_is_not_cached_past_a_write(store: Store) -> None:
    key = store_key("t", "k")
    assert store.get(key) is None
    store.write([put("t", "k", "now")], 1)
    assert store.get(key) == "now"


def test_reset_then_reopen_is_empty_without_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    first = Store(path)
    first.write([put("t", "k", 1)], 10)
    first.reset()
    assert first.checkpoint is None and first.get(store_key("t", "k")) is None
    first.close()
    again = Store(path)
    try:
        assert again.checkpoint is None
        assert again.get(store_key("t", "k")) is None
        assert list(again.items("t")) == []
    finally:
        again.close()


def test_every_write_is_on_disk_after_close_without_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    first = Store(path)
    for i in range(5):
        first.write([put("t", f"k{i}", i), put("u", i, {"i": i})], i + 1)
    first.write([(store_key("t", "k0"), None, None)], 6)
    first.close()
    again = Store(path)
    try:
        assert again.checkpoint == 6
        assert list(again.items("t")) == [(f"k{i}", i) for i in range(1, 5)]
        assert [v for _, v in again.items("u")] == [{"i": i} for i in range(5)]
    finally:
        again.close()


def test_the_position_is_none_until_written_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "p0"
    first = Store(path)
    assert first.position is None
    first.write([put("t", "k", 1), (POSITION, dumps(120), 120)], 3)
    assert first.position == 120
    first.close()
    again = Store(path)
    try:
        assert again.position == 120
        assert list(again.items("t")) == [("k", 1)]  # not a row of any table
    finally:
        again.close()


def test_each_table_file_has_a_bloom_filter_for_reads_of_absent_keys(tmp_path: Path) -> None:
    def filtered_entries(rows: range) -> str:
        store = Store(tmp_path)
        try:
            store.write([(store_key("seen", f"m{n}"), b"1", 1) for n in rows], 1)
            store._db.flush()  # a table file, as a full memtable makes one
            assert store.get(store_key("seen", f"m{rows[0]}")) == 1
            assert store.get(store_key("seen", "x")) is None
            properties = store._db.property_value("rocksdb.aggregated-table-properties")
            assert properties is not None
            return properties.split("# entries for filter=")[1].split(";")[0]
        finally:
            store.close()

    assert filtered_entries(range(100)) == "102"  # the rows, the checkpoint and its time
    assert filtered_entries(range(100, 150)) == "154"  # reopened: its new file has one too


def test_table_files_are_not_compressed_and_compressed_ones_still_read(tmp_path: Path) -> None:
    # A store written before compression was turned off (RocksDB's default, snappy).
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_compression_type(DBCompressionType.snappy())
    old = Rdict(str(tmp_path), options, column_families={"default": options})
    old[store_key("t", "a")] = b'{"n":1}'
    old.flush()
    old.close()
    store = Store(tmp_path)
    try:
        assert store.get(store_key("t", "a")) == {"n": 1}
        store.write([(store_key("t", "b"), b"2", 2)], 1)
        assert store.get(store_key("t", "b")) == 2
        latest = max(tmp_path.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
        assert "  compression=kNoCompression" in latest.read_text().splitlines()
    finally:
        store.close()
