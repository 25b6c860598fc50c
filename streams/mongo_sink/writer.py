"""The MongoDB side of the sink: guarded bulk writes, positions, aliases and indexes.

Every document carries the changelog position it reflects (`_partition`, `_offset`). A write
replaces a document only if it holds the same or an older position, and a delete removes one
only then: writing the same batch twice replaces it with itself, and an older one after a newer
changes nothing. A guarded upsert that finds a newer document fails with a duplicate `_id`
(MongoDB then tries to insert), which is the refusal, not an error. A document MongoDB does not
hold yet is inserted; if it is there after all, the guarded upsert decides.

`sink_positions` holds, per changelog partition, the next offset MongoDB does not reflect yet;
`read_models` holds the aliases: for each projection, the version whose collections answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DeleteMany, InsertOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from streams.mongo_sink.documents import ReadModel
from streams.mongo_sink.pending import Writes

__all__ = ["ALIASES", "POSITIONS", "ReadModelWriter", "position_id"]

POSITIONS = "sink_positions"
ALIASES = "read_models"
DUPLICATE_KEY = 11000
# Operations per bulk write: FerretDB 1.24 (SQLite) stops answering a bulk of about 100
# replacements of existing documents; 50 are well within it and cost MongoDB nothing.
BULK_OPS = 50


# (filter, the document replacing the one it finds, or None to delete what it finds)
Op = tuple[dict[str, Any], dict[str, Any] | None]


def _operation(op: Op) -> ReplaceOne[dict[str, Any]] | DeleteMany:
    where, doc = op
    return ReplaceOne(where, doc, upsert=True) if doc is not None else DeleteMany(where)


def _duplicates(exc: BulkWriteError) -> list[dict[str, Any]]:
    """The errors of a bulk write, when every one is a duplicate `_id`; else `exc` again."""
    errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
    if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return errors


def position_id(topic: str, partition: int) -> str:
    return f"{topic}|{partition}"


class ReadModelWriter:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self._indexed: set[str] = set()

    async def positions(self, topic: str) -> dict[int, int]:
        """Partition -> the next changelog offset MongoDB does not reflect."""
        found = self.db[POSITIONS].find({"topic": topic})
        return {doc["partition"]: doc["offset"] async for doc in found}

    async def write(
        self,
        topic: str,
        partition: int,
        next_offset: int,
        writes: Mapping[str, Writes],
        indexes: Mapping[str, tuple[str, ...]],
    ) -> int:
        """Apply a batch's writes (collection -> writes) reflecting the changelog up to
        `next_offset`, then record that position; the number of documents written or deleted."""
        offset = next_offset - 1  # the last record the documents reflect
        older = {"$lte": offset}  # the same batch written again replaces itself
        mark = {"_partition": partition, "_offset": offset}
        done = 0
        for name, w in writes.items():
            await self._ensure_index(name, indexes[name])
            if w.inserts:
                inserts = [{"_id": i, **doc, **mark} for i, doc in w.inserts.items()]
                await self._insert(name, inserts, older)
                done += len(inserts)
            ops: list[Op] = [
                ({"_id": i, "_offset": older}, {"_id": i, **doc, **mark})
                for i, doc in w.upserts.items()
            ]
            ops += [({"_id": i, "_offset": older}, None) for i in w.deletes]
            ops += [
                ({"location_id": loc, "_id": {"$nin": kept}, "_offset": older}, None)
                for loc, kept in w.locations.items()
            ]
            if ops:
                await self._bulk(name, ops)
                done += len(ops)
        # Guarded like the documents: a position never moves back.
        with contextlib.suppress(DuplicateKeyError):
            await self.db[POSITIONS].update_one(
                {"_id": position_id(topic, partition), "offset": {"$lt": next_offset}},
                {
                    "$set": {
                        "topic": topic,
                        "partition": partition,
                        "offset": next_offset,
                        "written_at": dt.datetime.now(dt.UTC),
                    }
                },
                upsert=True,
            )
        return done

    async def _insert(self, name: str, docs: list[dict[str, Any]], older: dict[str, int]) -> None:
        """New documents, inserted: an upsert that finds nothing made FerretDB 1.24 search the
        whole collection (11 ms of its CPU a document in one of 3,000; an insert, 0.04 ms). One
        that is there after all (another sink wrote it meanwhile) gets the guarded upsert."""
        there: list[dict[str, Any]] = []
        for start in range(0, len(docs), BULK_OPS):
            chunk = docs[start : start + BULK_OPS]
            try:
                await self.db[name].bulk_write([InsertOne(d) for d in chunk], ordered=False)
            except BulkWriteError as exc:
                there += [chunk[e["index"]] for e in _duplicates(exc)]
        if there:
            await self._bulk(name, [({"_id": d["_id"], "_offset": older}, d) for d in there])

    async def _bulk(self, name: str, ops: list[Op]) -> None:
        for start in range(0, len(ops), BULK_OPS):
            chunk = ops[start : start + BULK_OPS]
            try:
                await self.db[name].bulk_write([_operation(op) for op in chunk], ordered=False)
            except BulkWriteError as exc:
                _duplicates(exc)  # refusals: those documents hold newer positions already
            except KeyError:
                # FerretDB 1.x answers a bulk with a refusal in it without `nModified`, which
                # PyMongo cannot read: the same operations one by one tell refusals apart.
                for where, doc in chunk:
                    with contextlib.suppress(DuplicateKeyError):
                        if doc is not None:
                            await self.db[name].replace_one(where, doc, upsert=True)
                        else:
                            await self.db[name].delete_many(where)

    async def _ensure_index(self, name: str, keys: tuple[str, ...]) -> None:
        if name not in self._indexed:
            await self.db[name].create_index([(k, ASCENDING) for k in keys])
            self._indexed.add(name)

    async def aliases(self) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc async for doc in self.db[ALIASES].find()}

    async def point_alias(self, projection: str, models: Sequence[ReadModel], version: int) -> None:
        """From now on `projection`'s read models answer from `version`'s collections: one
        document's change, so a reader never mixes two versions."""
        await self.db[ALIASES].update_one(
            {"_id": projection},
            {
                "$set": {
                    "version": version,
                    "collections": {m.collection: m.versioned(version) for m in models},
                    "switched_at": dt.datetime.now(dt.UTC),
                }
            },
            upsert=True,
        )

    async def forget_position(self, topic: str, partition: int) -> None:
        await self.db[POSITIONS].delete_one({"_id": position_id(topic, partition)})

    async def drop_version(self, model: ReadModel, version: int) -> None:
        await self.db.drop_collection(model.versioned(version))
        self._indexed.discard(model.versioned(version))

    async def topics(self) -> set[str]:
        """The changelogs MongoDB holds positions of."""
        return set(await self.db[POSITIONS].distinct("topic"))

    async def forget_topic(self, topic: str) -> None:
        await self.db[POSITIONS].delete_many({"topic": topic})

    async def collections(self) -> set[str]:
        return set(await self.db.list_collection_names())
