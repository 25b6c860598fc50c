"""`stale`: whether a store may go on from its checkpoint in its changelog partition; and the
time its checkpoint is read by."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from rocksdict import Options, Rdict

from streams.runtime.changelog import STALE_AFTER_MS, apply_records, stale
from streams.runtime.store import CHECKPOINT, Store, store_key
from streams.topics import TOMBSTONES_KEPT_MS

NOW = 1_800_000_000_000  # ms
DAY = TOMBSTONES_KEPT_MS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path)
    yield s
    s.close()


def test_a_store_goes_on_from_a_checkpoint_inside_its_changelog(store: Store) -> None:
    assert stale(store, 0, 10, NOW) is None  # no checkpoint: from the first record
    store.write([], 5, read_by=NOW - STALE_AFTER_MS + 1)
    assert stale(store, 0, 10, NOW) is None


def test_a_checkpoint_the_changelog_does_not_hold_is_stale(store: Store) -> None:
    store.write([], 5, read_by=NOW)
    assert stale(store, 6, 10, NOW) == "checkpoint 5 outside [6, 10]"  # compacted past it
    assert stale(store, 0, 4, NOW) == "checkpoint 5 outside [0, 4]"  # the topic recreated


def test_records_since_a_checkpoint_read_by_too_long_ago_make_it_stale(store: Store) -> None:
    # A deletion among them may have been compacted away: restored from the checkpoint, the
    # deleted row would come back.
    store.write([], 5, read_by=NOW - STALE_AFTER_MS)
    assert stale(store, 0, 10, NOW) == (
        "records written since checkpoint 5, read by 20 h ago: a deletion among them may be "
        "gone (24 h kept)"
    )
    # A quiet partition: only the last batch's commit marker after it, or nothing at all.
    assert stale(store, 0, 6, NOW) is None
    assert stale(store, 0, 5, NOW) is None


def test_a_checkpoint_without_a_time_is_trusted_only_with_nothing_written_since(
    tmp_path: Path,
) -> None:
    options = Options(raw_mode=True)  # a store written before checkpoints had a time
    options.create_if_missing(True)
    old = Rdict(str(tmp_path), options)
    old[CHECKPOINT] = b"5"
    old.close()
    store = Store(tmp_path)
    try:
        assert store.checkpoint == 5 and store.checkpoint_at is None
        assert stale(store, 0, 6, NOW) is None  # caught up at the upgrade: nothing rebuilt
        assert stale(store, 0, 10, NOW) == "records written since checkpoint 5, which has no time"
    finally:
        store.close()


def test_changelog_records_applied_are_read_by_the_last_ones_time(tmp_path: Path) -> None:
    # A store behind its changelog (restoring, a standby catching up) has read only what was
    # written before its last record: not "now".
    records = [
        SimpleNamespace(key=store_key("t", n), value=b"1", offset=n, timestamp=NOW - DAY + n)
        for n in range(3)
    ]
    store = Store(tmp_path)
    apply_records(store, records)
    store.close()
    store = Store(tmp_path)  # kept across a reopen
    try:
        assert (store.checkpoint, store.checkpoint_at) == (3, NOW - DAY + 2)
        assert stale(store, 0, 10, NOW + 2) is not None
    finally:
        store.close()


def test_reading_more_never_moves_the_time_back(store: Store) -> None:
    # A store read from the start is stamped when it began (`restore`): the old records at the
    # head of a compacted changelog do not make it look stale when a restore is cut short.
    store.write([], 0, read_by=NOW)
    old = [SimpleNamespace(key=store_key("t", "a"), value=b"1", offset=0, timestamp=NOW - DAY)]
    apply_records(store, old)
    assert (store.checkpoint, store.checkpoint_at) == (1, NOW)
