"""A batch's effects (its derived events and its table writes) reach Kafka all or nothing.

Why: Faust logs each table write as its own message in its table's changelog topic, one topic
per table, with no transaction. A worker killed (kill -9, a lost host) while those messages are
in flight leaves its successor a state holding some of a batch's writes and not others: a lead
counted in `lead_contacts` but not in `leads`, a position saying a record was folded whose writes
never landed. Folding the batch again from such a state gives wrong numbers and notifications
the log does not call for (both seen in the fault tests).

So the agents that write the live tables commit through `Effects.commit`:
1. Wait until every changelog write of the previous commit is acknowledged by Kafka.
2. Append to the derived topic, per source partition p, ONE record batch: the derived events
   that p's records caused, then a marker holding every table write of p's records (the
   families' positions included). Kafka appends a record batch all or nothing, and the batch
   goes to derived partition p (mod the derived topic's partitions), so the marker lands exactly
   when its events do.
3. Once Kafka has acknowledged those batches, write the tables (Faust logs the changes).

A worker that takes partition p over (a restart, a rebalance) applies p's last marker before it
folds anything of p (`Effects.recover`). Step 1 means only that last commit can be partly in the
changelogs: the writes it lacks are written again, the ones it has are written with the same
values. Its derived events landed with the marker and are not sent again. A commit that never
reached Kafka left nothing behind: its records are folded again from the state before it, and
emit the same events with the same ids.

Markers live in the derived topic (key none, header `streams-effects-of`) because only one
partition's record batch is atomic; the publisher and every reader of derived events skip them.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.streams import _current_event

from streams.agents.staged import DELETED, Staged
from streams.codec import dumps, loads
from streams.tables.projection import Tables

__all__ = [
    "MARKER_HEADER",
    "MAX_BATCH_BYTES",
    "Effects",
    "TooLarge",
    "flush_changelogs",
    "is_marker",
    "marker_writes",
    "writing_for",
]

log = logging.getLogger(__name__)

MARKER_HEADER = "streams-effects-of"  # value: the source partition, in decimal
MAX_BATCH_BYTES = 1_000_000  # under the broker's default max.message.bytes (1 MiB)
# How long each step of a commit or a recovery waits for Kafka (setting up, the previous
# changelog writes, the record batches) before the worker stops without committing: an outage
# shorter than this is ridden out (batches wait; ingress answers 503), anything stuck longer is
# left to a restart.
KAFKA_PATIENCE = 300.0  # seconds
STOP_WAIT = 10.0  # seconds a stopping worker waits for the commit in progress
SCAN_RECORDS = 1_000  # how far back from the end of a derived partition a marker is looked for
RETRY_PAUSE = 1.0  # seconds between two attempts to reach Kafka within the patience

T = TypeVar("T")


class TooLarge(Exception):
    """A partition's effects do not fit in one record batch."""


def is_marker(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    return any(name == MARKER_HEADER for name, _ in headers or ())


def marker_writes(staged: Mapping[str, Staged]) -> dict[int, dict[str, Any]]:
    """The markers of a commit, per source partition: the staged writes whose records came from
    it (a partition without writes has none)."""
    markers: dict[int, dict[str, Any]] = {}
    for name, table in staged.items():
        for key, value, origin in table.changes():
            marker = markers.get(origin.message.partition)
            if marker is None:
                marker = markers[origin.message.partition] = _marker(origin.message.partition)
            if value is DELETED:
                marker["deleted"].append([name, key])
            else:
                marker["set"].append([name, key, value])
    return markers


def _marker(partition: int) -> dict[str, Any]:
    return {"partition": partition, "set": [], "deleted": []}


def writing_for(record: Any) -> None:
    """Make `record` the one Faust attributes the next table writes to: Faust stores and logs a
    write in the partition of the record being processed, which it reads from this context
    variable (its own iteration sets it; a batch is written after the iteration)."""
    _current_event.set(weakref.ref(record) if record is not None else None)


async def flush_changelogs(producer: Any) -> None:
    """Until every message Faust's producer was given (table writes included) is acknowledged
    by Kafka. Bounded by the caller (`Effects.commit` stops the worker after KAFKA_PATIENCE).

    Faust's `Producer.flush` is not enough on its own: its buffer's `flush` gives up as soon as
    one message takes over 0.1s to be handed to aiokafka (`ProducerBuffer.flush_atmost`), and
    the buffer's sender takes a message off its queue before handing it over, so an empty queue
    is not a sent message. Wait until the queue is empty and the sender idle (waiting for the
    next message), then flush aiokafka."""
    buffer = producer.buffer
    await producer.flush()
    while buffer.size or not getattr(buffer.pending, "_getters", True):
        await asyncio.sleep(0.005)
    await producer.flush()


class Effects:
    """The one way the live worker's agents change its tables (see the module docstring).

    Agents hold `lock` from their first table read to the end of `commit`, so a commit never
    overwrites what another agent committed after it read."""

    def __init__(
        self,
        bootstrap: str,
        derived_topic: str,
        tables: Tables,
        flush_changelogs: Callable[[], Awaitable[None]],
        *,
        patience: float = KAFKA_PATIENCE,
    ) -> None:
        self.lock = asyncio.Lock()
        self.patience = patience
        self._bootstrap = bootstrap
        self._topic = derived_topic
        self._tables = tables
        self._flush = flush_changelogs
        self._recovered: set[int] = set()
        self._producer: AIOKafkaProducer | None = None
        self._partitions: int | None = None  # of the derived topic

    async def stop(self) -> None:
        """After the commit in progress, if any (a stopped producer would fail it)."""
        try:
            await asyncio.wait_for(self.lock.acquire(), STOP_WAIT)
        except TimeoutError:
            log.warning("stopping while a commit is still in progress")
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this worker no longer owns: taken again, they are recovered again."""
        self._recovered.difference_update(partitions)

    async def recover(self, records: Iterable[Any]) -> None:
        """Apply the last marker of each partition of `records` not recovered since this worker
        took it."""
        firsts: dict[int, Any] = {}
        for record in records:
            firsts.setdefault(record.message.partition, record)
        todo = {p: r for p, r in firsts.items() if p not in self._recovered}
        if not todo:
            return
        markers = await _with_patience(
            f"recovering partitions {sorted(todo)}",
            lambda: self._last_markers(list(todo)),
            self.patience,
        )
        for partition, record in todo.items():
            marker = markers.get(partition)
            if marker is not None:
                self._apply_marker(marker, record)
                log.info(
                    "partition %s: applied its last commit's %d table writes",
                    partition,
                    len(marker["set"]) + len(marker["deleted"]),
                )
            self._recovered.add(partition)

    async def commit(
        self, staged: Mapping[str, Staged], derived: Mapping[int, list[dict[str, Any]]]
    ) -> None:
        """Send `derived` (per source partition) with markers of the `staged` writes, then apply
        them. Raises `TooLarge` (nothing sent) when a partition's effects do not fit in one
        record batch."""
        producer, count = await _with_patience("committing", self._derived, self.patience)
        await asyncio.wait_for(self._flush(), self.patience)
        markers = marker_writes(staged)
        # A partition with neither events nor writes has nothing to commit.
        partitions = sorted(markers.keys() | {p for p, items in derived.items() if items})
        batches = {
            p: _record_batch(producer, derived.get(p, []), markers.get(p) or _marker(p))
            for p in partitions
        }
        sent = [
            await producer.send_batch(batch, self._topic, partition=p % count)
            for p, batch in batches.items()
        ]
        await asyncio.gather(*sent)
        # The writes in one synchronous step: nothing else changes the tables meanwhile.
        for table in staged.values():
            table.apply(before_write=writing_for)
        writing_for(None)

    def _apply_marker(self, marker: dict[str, Any], record: Any) -> None:
        writing_for(record)
        try:
            for name, key, value in marker["set"]:
                self._tables[name][key] = value
            for name, key in marker["deleted"]:
                self._tables[name].pop(key, None)
        finally:
            writing_for(None)

    async def _last_markers(self, sources: list[int]) -> dict[int, dict[str, Any]]:
        _, count = await self._derived()
        return await _last_markers(self._bootstrap, self._topic, count, sources)

    async def _derived(self) -> tuple[AIOKafkaProducer, int]:
        """The producer of commits, and how many partitions the derived topic has."""
        producer = await self._started()
        if self._partitions is None:
            self._partitions = len(await producer.partitions_for(self._topic))
        return producer, self._partitions

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                acks="all",
                enable_idempotence=True,
                max_batch_size=MAX_BATCH_BYTES,
                max_request_size=MAX_BATCH_BYTES + 65_536,
                linger_ms=0,
                # aiokafka retries a batch until this expires: as long as a commit waits.
                request_timeout_ms=int(self.patience * 1000),
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer


def _record_batch(
    producer: AIOKafkaProducer,
    derived: list[dict[str, Any]],
    marker: dict[str, Any],
    limit: int = MAX_BATCH_BYTES,
) -> Any:
    batch = producer.create_batch()  # the producer's max_batch_size is `limit`
    for item in derived:
        if batch.append(key=item["channel"].encode(), value=dumps(item), timestamp=None) is None:
            raise TooLarge(f"{len(derived)} derived events")
    header = [(MARKER_HEADER, str(marker["partition"]).encode())]
    if batch.append(key=None, value=dumps(marker), timestamp=None, headers=header) is None:
        raise TooLarge(f"{len(marker['set'])} table writes")
    batch.close()  # nothing else may join it: it is appended as one
    if batch.size() > limit:  # a batch always takes its first record, however large
        raise TooLarge(f"{batch.size()} bytes")
    return batch


async def _with_patience(what: str, attempt: Callable[[], Awaitable[T]], patience: float) -> T:
    """`attempt()`, made again after each transient Kafka error until `patience` seconds have
    passed: a worker rides out a broker restart instead of stopping on the first refused
    connection. Then `TimeoutError`, with the last error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                return await attempt()
        except KafkaError as exc:
            # Timeouts are not `retriable` in aiokafka's sense, yet a broker restart causes them.
            if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
                raise
            # An explicit deadline: a cancellation swallowed inside aiokafka's clean-up must not
            # make the timeout above miss and this loop run forever.
            if loop.time() + RETRY_PAUSE >= deadline:
                raise TimeoutError(
                    f"{what}: no answer from Kafka in {patience:.0f}s: {exc!r}"
                ) from exc
            log.warning("%s: Kafka did not answer (%r); trying again", what, exc)
            await asyncio.sleep(RETRY_PAUSE)


async def _last_markers(
    bootstrap: str, topic: str, count: int, sources: list[int]
) -> dict[int, dict[str, Any]]:
    """The last marker of each source partition, from the last `SCAN_RECORDS` records of its
    derived partition (every commit ends with one)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        tps = {p: TopicPartition(topic, p % count) for p in sources}
        consumer.assign(list(set(tps.values())))
        firsts = await consumer.beginning_offsets(list(tps.values()))
        ends = await consumer.end_offsets(list(tps.values()))
        found: dict[int, dict[str, Any]] = {}
        for source, tp in tps.items():
            start = max(firsts[tp], ends[tp] - SCAN_RECORDS)
            if start >= ends[tp]:
                continue
            consumer.seek(tp, start)
            last = None
            while await consumer.position(tp) < ends[tp]:
                fetched = await consumer.getmany(tp, timeout_ms=1000)
                for record in fetched.get(tp, []):
                    if record.offset < ends[tp] and (MARKER_HEADER, str(source).encode()) in (
                        record.headers or ()
                    ):
                        last = record
            if last is not None:
                found[source] = loads(last.value)
        return found
    finally:
        await consumer.stop()
