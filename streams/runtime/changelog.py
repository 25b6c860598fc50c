"""The changelog: a compacted topic per group that holds every table's latest state, and the
reader that restores a store from it (Kafka Streams' `StoreChangelogReader`).

One topic per group (`{group}-changelog`), not one per table: a batch's changes of partition p
all go to changelog partition p, so a transaction touches one changelog partition per input
partition whatever the number of tables. Record keys are the store's keys (`{table}\\x00{JSON
key}`), values the JSON state, None a deletion, and one more key, `POSITION`: the source offset
the state has folded up to. Only transactions write it: readers read committed records only, so
an aborted batch is never restored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.codec import loads
from streams.errors import StreamsError
from streams.runtime.store import POSITION, Store, table_and_key
from streams.topics import TOMBSTONES_KEPT_MS, partition_ids

__all__ = [
    "StaleCheckpoint",
    "apply_records",
    "changelog_topic",
    "read_changelog",
    "reader",
    "restore",
    "settled",
    "stale",
]

log = logging.getLogger(__name__)

RESTORE_BATCH = 10_000  # records per store write while restoring
SETTLE_PAUSE_S = 0.05  # between two looks at a changelog holding a previous owner's transaction
# Longer than any transaction lives (its 10 s timeout, then the coordinator's check for expired
# ones, every 10 s by default): one still open is hanging (KIP-664). Seen once in this project's
# tests: a broker restarted under an open transaction aborted it before it knew the partitions'
# leader, and skipped their markers ("these partitions are likely deleted already").
HANGING_AFTER_S = 30.0
# A store's records read longer ago than this may have missed a deletion (`stale`): the
# changelog's TOMBSTONES_KEPT_MS, less room for clocks and for a restore's own time.
STALE_AFTER_MS = TOMBSTONES_KEPT_MS - 4 * 3600 * 1000
HANGING = (
    "%s: a transaction has been open for %.0fs, from offset %d: longer than any live transaction "
    "lasts, so it is hanging, and no reader of this partition can read past it. Abort it: "
    "kafka-transactions.sh --bootstrap-server ... find-hanging / abort (KIP-664)"
)


def changelog_topic(group: str) -> str:
    return f"{group}-changelog"


def reader(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer for changelogs: no group, committed records only, large fetches."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",  # a store without a checkpoint starts at the beginning
        # An empty partition's fetch is answered after this wait: a restore must not idle 0.5 s.
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )


def stale(store: Store, first: int, end: int, now_ms: int | None = None) -> str | None:
    """Why `store` cannot go on from its checkpoint in a changelog partition whose records
    span [first, end), or None when it can (or has no checkpoint: it starts at `first`).

    The store's `checkpoint_at` is a time by which any deletion it has not read is still in
    the changelog (`Store.write`), which keeps one TOMBSTONES_KEPT_MS once compacted: a store
    that old (STALE_AFTER_MS, with room for clocks and the restore's own time), or of unknown
    age, with records written since may have missed one. Every changelog write is
    transactional: the one offset after a batch's last record is its commit marker, so a
    checkpoint one short of the end has nothing since."""
    checkpoint, read_by = store.checkpoint, store.checkpoint_at
    if checkpoint is None:
        return None
    if not first <= checkpoint <= end:  # the topic was recreated, or compacted past it
        return f"checkpoint {checkpoint} outside [{first}, {end}]"
    if checkpoint >= end - 1:
        return None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if read_by is None:
        return f"records written since checkpoint {checkpoint}, which has no time"
    if now_ms - read_by >= STALE_AFTER_MS:
        return (
            f"records written since checkpoint {checkpoint}, read by {(now_ms - read_by) / 3.6e6:.0f}"
            f" h ago: a deletion among them may be gone ({TOMBSTONES_KEPT_MS / 3.6e6:.0f} h kept)"
        )
    return None


async def restore(consumer: AIOKafkaConsumer, store: Store, tp: TopicPartition) -> int:
    """Bring `store` up to the end of its changelog partition, from its checkpoint; the number
    of records read. `consumer` is a `reader`, assigned nothing else meanwhile."""
    started = time.monotonic()
    consumer.assign([tp])
    first = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]  # read_committed: the last stable offset
    reason = stale(store, first, end)
    if reason is not None:
        log.warning("%s: %s; restoring from scratch", tp, reason)
        raise StaleCheckpoint(tp)
    if store.checkpoint is None:
        # From the start, stamped now: a deletion not read yet is in the changelog a day from
        # now at least (compaction removes the rows a deletion deletes before the deletion),
        # so a restore cut short goes on from where it was, not from the start again.
        store.write((), first)
    start = store.checkpoint
    assert start is not None
    consumer.seek(tp, start)
    read = 0
    while await consumer.position(tp) < end:
        records = (await consumer.getmany(tp, timeout_ms=1000, max_records=RESTORE_BATCH)).get(
            tp, []
        )
        if records:
            apply_records(store, records)
            read += len(records)
    store.write((), end)  # past control records and compacted gaps; read to the end by now
    if read:
        log.info("%s: restored %d records in %.1fs", tp, read, time.monotonic() - started)
    return read


async def settled(
    committed: AIOKafkaConsumer, log_end: AIOKafkaConsumer, tp: TopicPartition, deadline: float
) -> None:
    """Until changelog partition `tp` holds no open transaction, so that a restore reads all
    that its previous owner committed, and nothing it may still commit: that owner lost the
    partition alive and was fenced by the group (the new producer it starts then ends its
    transaction), or was killed and restarted (its producer's start ends it), or was killed for
    good (the coordinator aborts it after its timeout). `committed` reads committed records only
    (a `reader`), `log_end` every record; TimeoutError past `deadline` (`time.monotonic()`)."""
    began = warned = time.monotonic()
    while True:
        # The stable offset first, then the log's end: if the first is not below the second
        # read after it, none was open when the first was read (the end only grows).
        stable = (await committed.end_offsets([tp]))[tp]
        if stable >= (await log_end.end_offsets([tp]))[tp]:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tp}: a transaction is still open")
        if time.monotonic() > warned + HANGING_AFTER_S:
            warned = time.monotonic()
            log.warning(HANGING, tp, warned - began, stable)
        await asyncio.sleep(SETTLE_PAUSE_S)
    if time.monotonic() - began > 1.0:
        waited = time.monotonic() - began
        log.info("%s: waited %.1fs for an open transaction to end", tp, waited)


class StaleCheckpoint(StreamsError, RuntimeError):
    """A store its changelog cannot bring up to date (`stale`): it is wiped and restored anew."""


def apply_records(store: Store, records: Sequence[Any]) -> None:
    """Write changelog records (of one partition, in order) to `store`, checkpoint included,
    read by the last one's time: those after it were written after it."""
    changes = [
        (r.key, r.value, None if r.value is None else loads(r.value)) for r in records if r.key
    ]
    store.write(changes, records[-1].offset + 1, read_by=records[-1].timestamp)


async def read_changelog(bootstrap: str, group: str) -> dict[str, dict[Any, Any]]:
    """Every table of `group` as its changelog holds it: table -> key -> value (for `streams
    replay compare` and tests). {} when the topic does not exist."""
    topic = changelog_topic(group)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partition_ids(admin, topic)]
    finally:
        await admin.close()
    tables: dict[str, dict[Any, Any]] = {}
    if not tps:
        return tables
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if not record.key or record.key == POSITION:
                        continue
                    table, key = table_and_key(record.key)
                    rows = tables.setdefault(table, {})
                    if record.value is None:
                        rows.pop(key, None)
                    else:
                        rows[key] = loads(record.value)
        return tables
    finally:
        await consumer.stop()
