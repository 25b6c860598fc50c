"""Row 2b, the upper bound of row 2: the live worker's families (`streams.app.live_families`,
what `create_worker` runs) folding the same raw records over plain dicts, in this
process, with no Kafka, no RocksDB, no transactions and no runtime: only what the worker's
`Processor` does per record (`headers_and_type`, `Event.from_record` once, the handler of each
family that owns the type). The records are read from the pre-filled topic first, outside the
timing.

`owners` and `fold_record` are also what the Quix Streams peer runs (bench.peer_quix), over its
own state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.common import PARTITIONS
from streams.agents.family import Family, Handler, headers_and_type
from streams.app import live_families
from streams.events import Event
from streams.tables.projection import Tables
from streams.tables.registry import LIVE_TABLES
from streams.topics import RAW_WEBHOOKS

__all__ = ["Owners", "fold_record", "measure", "owners", "raw_records"]

Owners = dict[str, list[Handler]]  # event type -> the handlers of the families that own it


def owners(tables: Tables, families: Iterable[Family] | None = None) -> Owners:
    """The live worker's families (or `families`) bound to one partition's tables, by type."""
    by_type: Owners = {}
    for _, types, make_handler in live_families() if families is None else families:
        handle = make_handler(tables)
        for kind in types:
            by_type.setdefault(kind, []).append(handle)
    return by_type


def fold_record(by_type: Owners, record: Any) -> None:
    """What the worker's `Processor` does with one record (whose content is good: the bench
    traffic has no bad records, so an error here stops the bench)."""
    headers, kind = headers_and_type(record)
    handles = by_type.get(kind, ())
    if handles:  # decoded once, for every family that owns the type
        event = Event.from_record(record.value, headers, record.partition, record.offset)
        for handle in handles:
            handle(event)


async def raw_records(bootstrap: str, count: int) -> list[Any]:
    """The first `count` records of the raw topic, as the worker's consumer gets them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(RAW_WEBHOOKS.name, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def measure(records: Iterable[Any]) -> tuple[float, dict[str, dict[Any, Any]]]:
    """(records/s, every table with the rows of all partitions): one set of dict tables and
    handlers per partition, as the worker has one per task."""
    partitions: dict[int, tuple[dict[str, dict[Any, Any]], Owners]] = {}
    for p in range(PARTITIONS):
        tables: dict[str, dict[Any, Any]] = {name: {} for name in LIVE_TABLES}
        partitions[p] = (tables, owners(tables))
    records = list(records)
    started = time.perf_counter()
    for record in records:
        fold_record(partitions[record.partition][1], record)
    rate = len(records) / (time.perf_counter() - started)
    merged: dict[str, dict[Any, Any]] = {name: {} for name in LIVE_TABLES}
    for tables, _ in partitions.values():
        for name, rows in tables.items():
            merged[name].update(rows)
    return rate, merged
