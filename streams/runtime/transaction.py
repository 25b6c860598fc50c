"""Exactly once per round: one transactional producer per worker, fenced by its group.

A worker commits what it folded in a round, for every partition it owns, in one transaction
(Kafka Streams' exactly-once v2, KIP-447):
1. Begin a transaction.
2. Append each partition's changelog records (each changed key once) to changelog partition p.
   One of them is the partition's source position (`streams.runtime.store.POSITION`): the offset
   after the last record folded, so the state and how far it has read commit as one.
3. Append its derived events and dead letters to partition p of their topics (modulo theirs),
   and wait until every append is acknowledged. Meanwhile the group's offsets partition joins
   the transaction (AddOffsetsToTxn), which aiokafka would send only after the appends.
4. Commit each partition's source position as the group's offset, in the transaction, with the
   worker's group generation and member (`streams.runtime.fencing`): a worker the group has moved
   on without is refused here, so its transaction never commits (its owner then replaces the
   producer, which ends the transaction).
5. Commit. Only then does the caller write its stores (`streams.runtime.loop`), each with the
   changelog offset this commit reached as its checkpoint.
Readers of the changelog and the derived topic read committed records only.

The transactional id is the worker's own and outlives its process (its static member id, kept
with its state): a worker restarted after a kill ends its open transaction at once when it
starts its producer. A worker taking a partition from another waits until the partition's
changelog holds no open transaction (`streams.runtime.loop`), so it restores everything the
previous owner committed and nothing it did not; step 3 before step 4 makes that enough: a
transaction the group accepted has its changelog records in the log already.

Until 2026-12-07 each input partition had its own producer (`{group}-{topic}-{partition}`), so
that whoever took a partition fenced the previous owner by starting a producer with its id:
aiokafka 0.14 sends no group metadata, so a shared producer was not fenced. That took a
transaction per partition per round, three requests each, and the group's offsets in a request
of their own after it: at 1,000 webhooks/s about 140 transactions a second over four partitions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.structs import OffsetAndMetadata

from streams.codec import dumps
from streams.errors import StreamsError
from streams.runtime.fencing import GroupFenced, Member, fence_by_group
from streams.topics import HEADERS_ROOM, STATE_MAX_BYTES

__all__ = [
    "MAX_BATCH_BYTES",
    "Batch",
    "Effects",
    "PartitionsLost",
    "Transaction",
]

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 1_000_000  # one record batch, under the broker's default max.message.bytes
# A transaction left open by a killed worker that is not restarted holds back its partitions'
# next owner until the coordinator aborts it, this long after it began (Kafka Streams' own
# setting under exactly-once; a round's commit takes milliseconds).
TRANSACTION_TIMEOUT_MS = 10_000
RETRY_BACKOFF_MS = 5  # the producer's other retries (coordinator moves, its own start)
# A transaction begun right after the previous commit finds the coordinator still writing that
# one's markers for a millisecond or two: its first AddPartitionsToTxn answers
# CONCURRENT_TRANSACTIONS (KAFKA-5477). aiokafka retries that one after a fixed 20 ms of its own
# (`BACKOFF_OVERRIDE`), not after retry_backoff_ms, so every back-to-back commit took 20 ms more
# than it needed: measured on an idle broker, 30 -> 11 ms a one-record transaction (p50, on
# asyncio's loop; uvloop's timers count whole milliseconds, so the pause is 2 to 3 ms there).
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.002
FENCED = (ProducerFenced, InvalidProducerEpoch, TransactionalIdAuthorizationFailed, GroupFenced)


class PartitionsLost(StreamsError, RuntimeError):
    """The group moved on without this worker, or another process took its transactional id:
    its partitions are dropped, and it writes nothing more for them until it owns them again."""


@dataclass
class Effects:
    """What a batch of one partition sends besides its changelog: derived events (key: the
    channel) and dead letters (key, value, headers)."""

    derived: list[dict[str, Any]] = field(default_factory=list)
    # When the webhook each derived event comes from was received (ms; None: not from one),
    # sent along as the record's `received-at` header (as the raw record has it), so the
    # publisher can tell how long a webhook took to reach Ably.
    derived_received: list[int | None] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )

    def __bool__(self) -> bool:
        return bool(self.derived or self.dead_letters)

    def derive(self, events: list[dict[str, Any]], received_at: int | None) -> None:
        self.derived.extend(events)
        self.derived_received.extend([received_at] * len(events))


Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]  # key, value, headers


@dataclass
class Batch:
    """What one partition commits in a round: its changed keys (key, encoded value or None for
    a deletion, value), its effects, and its source position (the group's offset)."""

    partition: int
    changes: list[tuple[bytes, bytes | None, Any]]
    effects: Effects
    position: int


def _derived(effects: Effects) -> Iterator[Record]:
    received = effects.derived_received
    for n, event in enumerate(effects.derived):
        at = received[n] if n < len(received) else None
        headers = [] if at is None else [("received-at", str(at).encode())]
        yield event["channel"].encode(), dumps(event), headers


def shorten_concurrent_transactions_backoff() -> None:
    """Retry CONCURRENT_TRANSACTIONS after `CONCURRENT_TRANSACTIONS_BACKOFF_S` (every producer
    of the process: aiokafka keeps it in a module constant)."""
    if not hasattr(aiokafka_sender, "BACKOFF_OVERRIDE"):  # an aiokafka that moved it
        raise RuntimeError("aiokafka.producer.sender.BACKOFF_OVERRIDE is gone: see its retry")
    aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_BACKOFF_S


class _OffsetsJoinEarly(TransactionManager):
    """aiokafka's transaction manager, but the group's offsets can join a transaction before
    they are known (`join_group`). aiokafka sends AddOffsetsToTxn with the offsets, and only then
    TxnOffsetCommit: two requests in a row after the appends, where a commit can do the first
    while its records are in flight, and so wait for one request less."""

    _joining: str | None = None

    def join_group(self, group_id: str) -> None:
        if self.is_in_transaction():  # not once an error or an abort has ended it
            self._joining = group_id
            self.notify_task_waiter()

    def consumer_group_to_add(self) -> str | None:
        # After the partitions to add (aiokafka asks for those first), before any offsets.
        if self._txn_consumer_group is None and self._joining is not None:
            return self._joining
        return super().consumer_group_to_add()

    def aborting_transaction(self) -> None:
        self._joining = None
        super().aborting_transaction()

    def complete_transaction(self) -> None:
        self._joining = None
        super().complete_transaction()

    def error_transaction(self, exc: BaseException) -> None:
        self._joining = None
        super().error_transaction(exc)

    def fatal_error(self, exc: BaseException) -> None:
        self._joining = None
        super().fatal_error(exc)


def offsets_join_early(producer: AIOKafkaProducer) -> _OffsetsJoinEarly:
    """`producer`'s transaction manager, made an `_OffsetsJoinEarly` (its accumulator, sender
    and producer share the one instance that aiokafka made)."""
    manager = getattr(producer, "_txn_manager", None)
    if type(manager) is not TransactionManager:  # an aiokafka that changed how it keeps it
        raise RuntimeError(f"aiokafka's transaction manager is {manager!r}: see _OffsetsJoinEarly")
    manager.__class__ = _OffsetsJoinEarly
    assert isinstance(manager, _OffsetsJoinEarly)
    return manager


class Transaction:
    """The producer of one worker's commits."""

    def __init__(
        self,
        bootstrap: str,
        *,
        group: str,
        transactional_id: str,
        source_topic: str,
        changelog_topic: str,
        derived_topic: str,
        dead_letter_topic: str,
    ) -> None:
        self.group, self.transactional_id = group, transactional_id
        self.source_topic, self.changelog_topic = source_topic, changelog_topic
        self.derived_topic, self.dead_letter_topic = derived_topic, dead_letter_topic
        self._partitions: dict[str, int] = {}  # partitions of the derived and dead-letter topics
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=transactional_id,
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=MAX_BATCH_BYTES,
            # A batch holds one record when that record alone is larger (a big table value).
            max_request_size=STATE_MAX_BYTES + HEADERS_ROOM,
            retry_backoff_ms=RETRY_BACKOFF_MS,
        )
        self._manager = offsets_join_early(self.producer)
        shorten_concurrent_transactions_backoff()

    async def start(self, member: Callable[[], Member]) -> None:
        """Register the transactional id (which ends this worker's transaction left open by a
        kill); offsets are committed as `member()` of the group."""
        fence_by_group(self.producer, member)
        try:
            await self.producer.start()
            for topic in (self.derived_topic, self.dead_letter_topic):
                self._partitions[topic] = len(await self.producer.partitions_for(topic))
        except BaseException:
            await self.producer.stop()
            raise

    def _partition_of(self, topic: str, partition: int) -> TopicPartition:
        """The partition of `topic` that source partition `partition` writes to."""
        return TopicPartition(topic, partition % self._partitions[topic])

    async def stop(self) -> None:
        try:
            await self.producer.stop()
        except KafkaError as exc:  # a fenced or failed producer: nothing left to flush
            log.debug("%s: producer stopped with %r", self.transactional_id, exc)

    async def commit(self, batches: Sequence[Batch]) -> dict[int, int | None]:
        """Commit a round (see the module docstring): the changelog offset after each
        partition's changes (None when it wrote no changelog record). Raises `PartitionsLost`
        when fenced."""
        producer = self.producer
        try:
            # Step 1
            await producer.begin_transaction()
            try:
                sent: dict[int, list[tuple[Any, int]]] = {}
                pending = []
                for batch in batches:
                    p = batch.partition
                    # Step 2
                    changelog = TopicPartition(self.changelog_topic, p)
                    sent[p] = await self._append(
                        changelog, ((k, v, []) for k, v, _ in batch.changes)
                    )
                    # Step 3: to the source partition's own partition of each topic (the derived
                    # topic's key stays the channel): a channel's events (all from one location)
                    # stay in order.
                    derived = self._partition_of(self.derived_topic, p)
                    pending += [f for f, _ in await self._append(derived, _derived(batch.effects))]
                    dead = self._partition_of(self.dead_letter_topic, p)
                    pending += [f for f, _ in await self._append(dead, batch.effects.dead_letters)]
                self._manager.join_group(self.group)  # while the appends are in flight
                await asyncio.gather(*(f for p in sent for f, _ in sent[p]), *pending)
                if not self._manager.is_in_transaction():
                    # The early join failed (its error ended the transaction): raise that error,
                    # not aiokafka's "not in the middle of a transaction".
                    await self._manager.wait_for_transaction_end()
                # Step 4
                offsets = {
                    TopicPartition(self.source_topic, b.partition): OffsetAndMetadata(
                        b.position, ""
                    )
                    for b in batches
                }
                await producer.send_offsets_to_transaction(offsets, self.group)
                # Step 5
                await producer.commit_transaction()
            except BaseException:
                await self._abort()
                raise
        except FENCED as exc:
            raise PartitionsLost(f"{self.transactional_id}: fenced ({exc!r})") from exc
        # The offset after each partition's last changelog record: its record batch's base
        # offset plus its records.
        return {
            p: int(appended[-1][0].result().offset) + appended[-1][1] if appended else None
            for p, appended in sent.items()
        }

    async def _append(self, tp: TopicPartition, records: Iterable[Record]) -> list[Any]:
        """Send (key, value, headers) records to `tp` in as few record batches as fit:
        (delivery future, records) of each."""
        producer, sent = self.producer, []
        batch, count = producer.create_batch(), 0
        for key, value, headers in records:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                sent.append((await self._send(batch, tp), count))
                batch, count = producer.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None, headers=headers)
            count += 1
        if count:
            sent.append((await self._send(batch, tp), count))
        return sent

    async def _send(self, batch: Any, tp: TopicPartition) -> Any:
        batch.close()
        return await self.producer.send_batch(batch, tp.topic, partition=tp.partition)

    async def _abort(self) -> None:
        try:
            await self.producer.abort_transaction()
        except Exception as exc:  # the producer is unusable; its owner replaces it
            log.warning("%s: abort failed (%r)", self.transactional_id, exc)
