"""A partition's state on disk: every table of one group, in one RocksDB, with its checkpoint.

Kafka Streams keeps a `.checkpoint` file of changelog offsets beside each store; Quix Streams
writes the offset into RocksDB in the same write batch as the state. This does the latter: the
checkpoint (the changelog offset the state reflects, the next one to read) and the state change
it covers land in one atomic `WriteBatch`, so whatever survives a crash is consistent, and a
restart restores only the changelog's tail from there (`streams.runtime.changelog`).

The write-ahead log is off: the changelog is the log. A crash that loses the last writes also
loses their checkpoint, and the restore reads them again.

Keys are `{table}\\x00{JSON key}` (the changelog's keys too), values JSON. Decoded values read
are cached (bounded): the folds are pure, they never change a value they read in place.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rocksdict import (
    BlockBasedOptions,
    DBCompressionType,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from streams.codec import dumps, loads

__all__ = ["CACHE_SIZE", "POSITION", "Store", "store_key", "table_and_key", "table_prefix"]

CHECKPOINT = b"\x01checkpoint"  # sorts after every table's keys (table names are text)
# A time (ms) by which any deletion the state has not read is still in the changelog, which
# keeps one only so long once compacted (`changelog.stale`).
CHECKPOINT_AT = b"\x01checkpoint-at"
# The source partition's offset this state has folded up to (the next record to fold): written
# with the state in each batch's transaction, in the changelog as in the store. A row of no table
# (no table's name starts with \x01), shaped as a table's key, so that a reader of the changelog
# that does not know it (an earlier version's MongoDB sink) skips it as a table it does not sink.
POSITION = b"\x01position\x00" + dumps("source")
CACHE_SIZE = 20_000  # decoded values kept per partition
WRITE_BUFFER_BYTES = 8 * 1024 * 1024
BLOOM_BITS_PER_KEY = 10  # about 1% false positives
_UNCACHED = object()


def table_prefix(table: str) -> bytes:
    """What every key of `table` starts with."""
    return table.encode() + b"\x00"


def store_key(table: str, key: Any) -> bytes:
    return table_prefix(table) + dumps(key)


def table_and_key(raw: bytes) -> tuple[str, Any]:
    table, _, key = raw.partition(b"\x00")
    return table.decode(), loads(key)


class Store:
    """One partition's tables. Not shared between processes: RocksDB locks its directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._write = WriteOptions()
        # A property at run time; rocksdict's stub calls it a method.
        self._write.disable_wal = True  # type: ignore[method-assign,assignment]
        self._open()

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        # Small memtables: a worker holds a store per partition (and per standby), and RocksDB's
        # default (64 MiB, two of them) would dominate its memory while a store is restored.
        options.set_write_buffer_size(WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        # A bloom filter per table file, as Kafka Streams' stores have: most reads are of keys
        # not there yet (a new message's dedup row, a new contact), and without one each such
        # read searches every file (a read 8.9 -> 4.7 us, 1.25 of them a record of the bench mix).
        # No compression, as Kafka Streams' stores: the values are small JSON documents read
        # and rewritten often, and RocksDB's snappy on every flush cost 1.7% of a record's work
        # through the state (bench.instructions). Files written compressed stay readable.
        options.set_compression_type(DBCompressionType.none())
        table = BlockBasedOptions()
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
        options.set_block_based_table_factory(table)
        # The default column family named with these options: else a directory that exists is
        # opened with the options of its OPTIONS file, where the bloom filter is not kept.
        self._db = Rdict(str(self.path), options, column_families={"default": options})
        # Decoded values by store key (None: absent), bounded; `Table.get` looks here first.
        self.cache: dict[bytes, Any] = {}
        raw, at = self._db.get(CHECKPOINT), self._db.get(CHECKPOINT_AT)
        self.checkpoint: int | None = int(raw) if raw is not None else None
        self.checkpoint_at: int | None = int(at) if at is not None else None

    def get(self, key: bytes) -> Any:
        """The decoded value under a `store_key`, None when absent."""
        value = self.cache.get(key, _UNCACHED)  # not try/except: a miss is common (a new key)
        return self.load(key) if value is _UNCACHED else value

    def load(self, key: bytes) -> Any:
        """`get` of a key not in the cache: read from RocksDB, decoded, cached."""
        raw = self._db.get(key)
        value = None if raw is None else loads(raw)
        cache = self.cache
        if len(cache) >= CACHE_SIZE:
            cache.clear()  # cheaper than LRU bookkeeping on every read
        cache[key] = value
        return value

    @property
    def position(self) -> int | None:
        """The source offset this state has folded up to (`POSITION`); None before any batch."""
        value = self.get(POSITION)
        return value if isinstance(value, int) else None

    def items(self, table: str) -> Iterator[tuple[Any, Any]]:
        """(key, value) of every row of `table`, in key order."""
        prefix = table_prefix(table)
        rows: Iterator[tuple[bytes, bytes]] = self._db.items(from_key=prefix)  # type: ignore[assignment]  # raw mode: bytes
        for raw, value in rows:
            if not raw.startswith(prefix):
                return
            yield loads(raw[len(prefix) :]), loads(value)

    def write(
        self,
        changes: Iterable[tuple[bytes, bytes | None, Any]],
        checkpoint: int | None,
        *,
        read_by: int | None = None,
    ) -> None:
        """Apply (key, encoded value or None for a deletion, decoded value) and move the
        checkpoint, in one atomic write. `read_by`: a time (ms) by which any deletion the state
        has not read is still in the changelog; now unless given (the changelog's only writer,
        a reader at its end or starting from its beginning). Never moved back: reading more
        never makes a deletion not read yet likelier to be gone."""
        batch = WriteBatch(raw_mode=True)
        for key, raw, value in changes:
            if raw is None:
                batch.delete(key)
            else:
                batch.put(key, raw)
            if key in self.cache:  # kept current, not grown: a restore writes every key once
                self.cache[key] = value
        if checkpoint is not None:
            at = (
                int(time.time() * 1000)
                if read_by is None
                else max(read_by, self.checkpoint_at or 0)
            )
            batch.put(CHECKPOINT, str(checkpoint).encode())
            batch.put(CHECKPOINT_AT, str(at).encode())
        self._db.write(batch, self._write)
        if checkpoint is not None:
            self.checkpoint, self.checkpoint_at = checkpoint, at

    def close(self) -> None:
        """Flush to disk and release the directory."""
        self.cache.clear()
        self._db.flush()
        self._db.close()

    def reset(self) -> None:
        """Delete everything, checkpoint included, and start empty (its changelog restores it
        from the start). Whoever holds this store keeps a valid one."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._open()
