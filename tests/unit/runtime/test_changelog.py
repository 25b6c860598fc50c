"""`stale`: whether a store may go on from its checkpoint in its changelog partition."""

from __future__ import annotations

from pathlib import Path

from rocksdict import Options, Rdict

from streams.runtime.changelog import stale
from streams.runtime.store import CHECKPOINT, Store
from streams.topics import TOMBSTONES_KEPT_MS

NOW = 1_800_000_000_000  # ms


def test_a_store_goes_on_from_a_recent_checkpoint_inside_its_changelog(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        assert stale(store, 0, 10, NOW) is None  # no checkpoint: from the first record
        store.write([], 5, written_at=NOW - TOMBSTONES_KEPT_MS + 1)
        assert stale(store, 0, 10, NOW) is None
        assert stale(store, 5, 5, NOW) is None  # at the end of a compacted partition
    finally:
        store.close()


def test_a_checkpoint_the_changelog_does_not_hold_is_stale(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        store.write([], 5, written_at=NOW)
        assert stale(store, 6, 10, NOW) == "checkpoint 5 outside [6, 10]"  # compacted past it
        assert stale(store, 0, 4, NOW) == "checkpoint 5 outside [0, 4]"  # the topic recreated
    finally:
        store.close()


def test_a_checkpoint_older_than_the_changelog_keeps_deletions_is_stale(tmp_path: Path) -> None:
    # A deletion written after it may have been compacted away: restored from the checkpoint,
    # the deleted row would come back.
    store = Store(tmp_path)
    try:
        store.write([], 5, written_at=NOW - TOMBSTONES_KEPT_MS)
        assert stale(store, 0, 10, NOW) == "checkpoint 24 h old, the changelog keeps deletions 24 h"
    finally:
        store.close()


def test_a_checkpoint_of_unknown_age_is_stale(tmp_path: Path) -> None:
    options = Options(raw_mode=True)  # a store written before checkpoints had their time
    options.create_if_missing(True)
    old = Rdict(str(tmp_path), options)
    old[CHECKPOINT] = b"5"
    old.close()
    store = Store(tmp_path)
    try:
        assert store.checkpoint == 5 and store.checkpoint_at is None
        assert stale(store, 0, 10, NOW) == (
            "checkpoint of unknown age, the changelog keeps deletions 24 h"
        )
    finally:
        store.close()


def test_the_checkpoints_time_is_kept_with_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write([], 7, written_at=NOW)
    store.write([], None)  # a write without a checkpoint leaves both
    store.close()
    store = Store(tmp_path)
    try:
        assert (store.checkpoint, store.checkpoint_at) == (7, NOW)
    finally:
        store.close()
