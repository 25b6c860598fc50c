"""One changelog partition as the sink follows it: a replica of the tables its read models read,
and the changes read since the last write to MongoDB, as document writes.

The replica is a store like a worker's (`streams.runtime.store`), with its checkpoint: the
changelog offset MongoDB holds up to. Records read go to an overlay (`PartitionState`), and each
location they touch has its documents computed before its first change; `writes` compares them
with the documents after. Once MongoDB took the writes, `stored` moves the replica and its
checkpoint. A crash in between reads the same records again: the writes are the same, and
MongoDB refuses any older than what it holds (`streams.mongo_sink.writer`).

Until its first write and until it has read what its changelog held when it was opened, a
partition is `fresh`: its replica may not be what MongoDB reflects (a replica without state, one
a kill -9 left behind MongoDB, or a write a kill cut between two bulks), so every document of each
touched location is written and the location's others are deleted (`Writes.locations`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.codec import loads
from streams.mongo_sink.documents import Documents, ReadModel, affected_locations
from streams.runtime.state import DELETED, PartitionState
from streams.runtime.store import POSITION, Store, table_and_key

__all__ = ["Pending", "Writes"]


@dataclass
class Writes:
    """What one collection gets from a batch: new documents (MongoDB holds none of them yet),
    documents to replace or add, ids to delete, and (fresh) the locations whose other documents
    go."""

    inserts: Documents = field(default_factory=dict)
    upserts: Documents = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    locations: dict[str, list[str]] = field(default_factory=dict)  # fresh: location -> kept ids

    def __bool__(self) -> bool:
        return bool(self.inserts or self.upserts or self.deletes or self.locations)


class Pending:
    def __init__(
        self, store: Store, tables: Iterable[str], models: Sequence[tuple[ReadModel, str]]
    ) -> None:
        """`models`: each read model with the collection it writes (its version's)."""
        self.store, self.models = store, models
        self.tables = frozenset(tables)
        self.state = PartitionState(store, tuple(self.tables), row_limit=None)
        self.fresh = True
        self.before: dict[str, dict[str, Documents]] = {}  # location -> collection -> documents
        self.last_offset: int | None = None  # of the last record read
        self.first_timestamp: int | None = None  # ms, of the first record not yet written
        self.last_timestamp: int | None = None  # ms, of the last record read
        # A replica read from the start is read by when it began (`changelog.restore`).
        self.read_floor = int(time.time() * 1000) if store.checkpoint is None else 0

    def add(self, records: Sequence[Any]) -> None:
        """Changelog records of this partition, in order."""
        if not records:
            return
        if self.first_timestamp is None:
            self.first_timestamp = records[0].timestamp
        for record in records:
            if not record.key or record.key == POSITION:
                continue
            table, key = table_and_key(record.key)
            if table not in self.tables:
                continue
            value = None if record.value is None else loads(record.value)
            for location in affected_locations(table, key, (self.state.get(record.key), value)):
                if location not in self.before:
                    self.before[location] = self._documents(location)
            self.state.put(record.key, DELETED if value is None else value)
        self.last_offset, self.last_timestamp = records[-1].offset, records[-1].timestamp

    def advance(self, position: int) -> None:
        """The consumer's position (past transaction markers, which are not records): MongoDB's
        position moves there with the next write, so a caught-up partition shows no lag."""
        reached = self.store.checkpoint if self.last_offset is None else self.last_offset + 1
        if position > (reached or 0):
            self.last_offset = position - 1

    def _documents(self, location: str) -> dict[str, Documents]:
        return {name: model.documents(self.state.tables, location) for model, name in self.models}

    def writes(self) -> dict[str, Writes]:
        """Collection -> what it gets, for the locations touched since the last write."""
        out = {name: Writes() for _, name in self.models}
        for location, before in self.before.items():
            after = self._documents(location)
            for name, documents in after.items():
                writes = out[name]
                if self.fresh:
                    writes.upserts.update(documents)
                    writes.locations[location] = list(documents)
                    continue
                old = before[name]
                for i, document in documents.items():
                    if i not in old:  # the replica is what MongoDB holds: a new document
                        writes.inserts[i] = document
                    elif old[i] != document:
                        writes.upserts[i] = document
                writes.deletes.update(i for i in old if i not in documents)
        return {name: w for name, w in out.items() if w}

    @property
    def next_offset(self) -> int | None:
        return None if self.last_offset is None else self.last_offset + 1

    def stored(self) -> None:
        """MongoDB holds the writes: the replica takes the changes and its new checkpoint."""
        if self.last_offset is not None:
            # Read by the last record's time (those after it were written after it).
            read_by = max(self.last_timestamp or 0, self.read_floor)
            self.store.write(self.state.seal(), self.last_offset + 1, read_by=read_by)
            self.state.sealed_stored()
        self.before.clear()
        self.last_offset = self.first_timestamp = None

    def caught_up(self) -> None:
        """The replica has read its changelog to the end once: it knows what MongoDB holds."""
        self.fresh = False
