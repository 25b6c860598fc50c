"""Catch-up: a new version folds the history already in the log in bulk, before its Faust app
starts.

Faust moves one record at a time through its stream machinery, about a millisecond a record here;
a new version has all of history to fold first. So before its Faust app starts, one replay worker
of the version (elected by a consumer group on the one-partition versions topic) reads every
partition of the raw log up to its current head with a plain consumer, applies the projection's
folds to in-memory tables, writes each table's final state to the version's changelog topics
(each key to the partition of the record that last wrote it, as Faust would) and only then commits
the head as the version's group offsets. Faust then starts as it does after a restart: it recovers
the tables from the changelogs and folds what arrived since, record by record, with live traffic.

A version whose group has committed anything is past catch-up (Faust continues it). A leader that
dies half way has written nothing it committed: its successor truncates the changelogs and starts
over. Memory: the version's tables are held in memory during catch-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.structs import OffsetAndMetadata

from streams import metrics
from streams.agents.family import CONTENT_ERRORS, headers_and_type
from streams.codec import dumps
from streams.dlq import redriven_for
from streams.events import Event
from streams.replay.changelog import changelog_topic
from streams.replay.control import Position
from streams.replay.versions import unit_id
from streams.settings import Settings
from streams.tables.projection import Projection
from streams.topics import PROJECTION_VERSIONS, RAW_WEBHOOKS, ensure_changelogs

__all__ = ["CatchUp", "catch_up"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatchUp:
    records: int
    skipped: int  # records the folds could not use
    keys: int  # changelog records written
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class _Recorded(MutableMapping[Any, Any]):
    """A table that remembers which raw partition last wrote each key (its changelog partition)."""

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}
        self.partition_of: dict[Any, int] = {}
        self.partition = 0

    def __getitem__(self, key: Any) -> Any:
        return self.data[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.data[key] = value
        self.partition_of[key] = self.partition

    def __delitem__(self, key: Any) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: Any, default: Any = None) -> Any:  # the folds' hot path
        return self.data.get(key, default)


async def catch_up(
    settings: Settings, bootstrap: str, projection: Projection, version: int
) -> CatchUp | None:
    """Fold the log's history for this version if it has not begun; None when there was nothing
    to do here (already begun, or another replay worker did it)."""
    group = unit_id(projection.name, version)
    async with Position(bootstrap) as position:
        if (await position.lag(group)).started:
            return None
        elector = AIOKafkaConsumer(
            PROJECTION_VERSIONS.name,
            bootstrap_servers=bootstrap,
            group_id=f"{group}-catchup",
            enable_auto_commit=False,
            max_poll_interval_ms=24 * 3600 * 1000,  # folding happens between polls
        )
        await elector.start()
        try:
            while not elector.assignment():
                if (await position.lag(group)).started:
                    return None  # the elected one has finished
                await elector.getmany(timeout_ms=1000)
            lag = await position.lag(group)
            if lag.started:
                return None
            return await _fold_history(settings, bootstrap, projection, group, lag.partitions)
        finally:
            await elector.stop()


async def _fold_history(
    settings: Settings,
    bootstrap: str,
    projection: Projection,
    group: str,
    positions: dict[int, tuple[int, int]],
) -> CatchUp:
    started = time.monotonic()
    head = {p: h for p, (_, h) in positions.items()}
    topics = {name: changelog_topic(group, name) for name in projection.tables}
    await _fresh_changelogs(settings, bootstrap, list(topics.values()))
    tables = {name: _Recorded() for name in projection.tables}
    wanted = projection.types
    records = skipped = 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        for partition, end in sorted(head.items()):
            tp = TopicPartition(RAW_WEBHOOKS.name, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            for table in tables.values():
                table.partition = partition
            while end and await consumer.position(tp) < end:
                batch = (await consumer.getmany(tp, timeout_ms=1000)).get(tp, [])
                for record in batch:
                    if record.offset >= end:
                        break
                    records += 1
                    headers, kind = headers_and_type(record)
                    if kind not in wanted:
                        continue
                    try:
                        event = Event.from_record(
                            record.value or b"", headers, partition, record.offset
                        )
                        projection.update(tables, event, redriven_for(headers))
                    except CONTENT_ERRORS as exc:
                        skipped += 1
                        log.warning(
                            "catch-up %s: %s:%s skipped: %s", group, partition, record.offset, exc
                        )
    finally:
        await consumer.stop()
    keys = await _write_changelogs(bootstrap, topics, tables)
    await _commit(bootstrap, group, head)
    metrics.count("streams_replay_records_total", records, projection=projection.name)
    return CatchUp(records, skipped, keys, time.monotonic() - started)


async def _fresh_changelogs(settings: Settings, bootstrap: str, names: list[str]) -> None:
    """Create the version's changelog topics as Faust would, or empty what a leader that died
    half way left in them."""
    created = await ensure_changelogs(
        bootstrap,
        names,
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
    )
    leftovers = [n for n in names if n not in created]
    if not leftovers:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(n, p) for n in leftovers for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records(
            {tp: RecordsToDelete(end) for tp, end in ends.items() if end}, timeout_ms=30000
        )
    finally:
        await admin.close()


async def _write_changelogs(
    bootstrap: str, topics: dict[str, str], tables: dict[str, _Recorded]
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    written = 0
    try:
        pending = []
        for name, table in tables.items():
            for key, value in table.data.items():
                pending.append(
                    await producer.send(
                        topics[name],
                        key=dumps(key),
                        value=dumps(value),
                        partition=table.partition_of[key],
                    )
                )
                written += 1
                if len(pending) >= 10_000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return written


async def _commit(bootstrap: str, group: str, head: dict[int, int]) -> None:
    # A commit from outside the group (generation -1): accepted only while no Faust member of the
    # version runs, which is the case until this catch-up returns.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = {
            TopicPartition(RAW_WEBHOOKS.name, p): OffsetAndMetadata(o, "") for p, o in head.items()
        }
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()
