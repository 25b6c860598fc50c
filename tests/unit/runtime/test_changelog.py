"""`stale`: whether a store may go on from its checkpoint in its changelog partition; and the
time its checkpoint is read by."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from rocksdict import Options, Rdict

from streams.runtime.changelog import apply_records, stale
from streams.runtime.store import CHECKPOINT, Store, store_key
from streams.topics import TOMBSTONES_KEPT_MS

NOW = 1_800_000_000_000  # ms
DAY = TOMBSTONES_KEPT_MS


def test_a_store_goes_on_from_a_checkpoint_inside_its_changelog(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        assert stale(store, 0, 10, NOW) is None  # no checkpoint: from the first record
        store.write([], 5, read_by=NOW - DAY + 1)
        assert stale(store, 0, 10, NOW) is None
    finally:
        store.close()


def test_a_checkpoint_the_changelog_does_not_hold_is_stale(tmp_path: Path) -> None:
    store = Store(tmp_path)
    try:
        store.write([], 5, read_by=NOW)
        assert stale(store, 6, 10, NOW) == "checkpoint 5 outside [6, 10]"  # compacted past it
        assert stale(store, 0, 4, NOW) == "checkpoint 5 outside [0, 4]"  # the topic recreated
    finally:
        store.close()


def test_records_since_the_checkpoint_older_than_deletions_are_kept_make_it_stale(
    tmp_path: Path,
) -> None:
    # A deletion among them may have been compacted away: restored from the checkpoint, the
    # deleted row would come back.
    store = Store(tmp_path)
    try:
        store.write([], 5, read_by=NOW - DAY)
        assert stale(store, 0, 10, NOW) == (
            "records written since checkpoint 5 go back 24 h, longer than the changelog keeps a "
            "deletion (24 h)"
        )
        assert stale(store, 0, 5, NOW) is None  # nothing written since: nothing missed
    finally:
        store.close()


def test_a_checkpoint_written_before_checkpoints_had_a_time_is_trusted(tmp_path: Path) -> None:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    old = Rdict(str(tmp_path), options)
    old[CHECKPOINT] = b"5"
    old.close()
    store = Store(tmp_path)
    try:
        assert store.checkpoint == 5 and store.checkpoint_at is None
        assert stale(store, 0, 10, NOW) is None  # as before: no store rebuilt by an upgrade
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
