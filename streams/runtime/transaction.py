"""Exactly once per batch: one transactional producer per owned input partition.

aiokafka 0.14 sends no consumer-group metadata with its transactional offset commits (no
KIP-447), so a producer shared by a worker would not be fenced when a rebalance moves a
partition away. So, as Kafka Streams did before KIP-447 and as Faust does, each input partition
has its own transactional id, `{group}-{topic}-{partition}`: whoever takes the partition starts
a producer with that id, which fences the previous owner (its next transaction fails with
`ProducerFenced`) and ends its open transaction. A worker that lost a partition (a rebalance, a
pause long enough to leave the group, a kill) can never write for it again.

`Transaction.commit` makes a batch's effects visible together or not at all:
1. Begin a transaction.
2. Append the batch's changelog records (each changed key once) to changelog partition p. One
   of them is the source position (`streams.runtime.store.POSITION`): the offset after the
   batch's last record, so the state and how far it has read commit as one.
3. Append its derived events and dead letters, to partition p of their topics (modulo theirs).
4. Commit. Only then does the caller write its store (`streams.runtime.task`), with the
   changelog offset this commit reached as its checkpoint.
Readers of the changelog and the derived topic read committed records only.

The consumed offset is not added to the transaction (`send_offsets_to_transaction`): aiokafka
sends that as two more requests, one after the other, in every commit (AddOffsetsToTxn, then
TxnOffsetCommit), which measured 25 -> 18 ms of a commit's p50 at 1,000 webhooks/s. Kafka
Streams and Quix Streams put the offsets in the transaction and resume from the group's offset;
here the position is in the state itself, so a task resumes from its restored position, and the
group's committed offset (written after each commit, `streams.runtime.loop`) only says how far
the group has come: `ingest --wait`, lag, `status`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
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

from streams.codec import dumps
from streams.errors import StreamsError
from streams.topics import HEADERS_ROOM, STATE_MAX_BYTES

__all__ = ["MAX_BATCH_BYTES", "Effects", "PartitionLost", "Transaction", "transactional_id"]

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 1_000_000  # one record batch, under the broker's default max.message.bytes
TRANSACTION_TIMEOUT_MS = 60_000
RETRY_BACKOFF_MS = 5  # the producer's other retries (coordinator moves, its own start)
# A transaction begun right after the previous commit finds the coordinator still writing that
# one's markers for a millisecond or two: its first AddPartitionsToTxn answers
# CONCURRENT_TRANSACTIONS (KAFKA-5477). aiokafka retries that one after a fixed 20 ms of its own
# (`BACKOFF_OVERRIDE`), not after retry_backoff_ms, so every back-to-back commit took 20 ms more
# than it needed: measured on an idle broker, 30 -> 11 ms a one-record transaction (p50).
CONCURRENT_TRANSACTIONS_BACKOFF_S = 0.002
FENCED = (ProducerFenced, InvalidProducerEpoch, TransactionalIdAuthorizationFailed)


class PartitionLost(StreamsError):
    """Another worker took the partition (this one was fenced): drop it, write nothing more."""


def transactional_id(group: str, topic: str, partition: int) -> str:
    return f"{group}-{topic}-{partition}"


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


class Transaction:
    """The producer of one input partition's commits."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        source: TopicPartition,
        changelog: TopicPartition,
        derived_topic: str,
        dead_letter_topic: str,
    ) -> None:
        self.group, self.source, self.changelog = group, source, changelog
        self.derived_topic, self.dead_letter_topic = derived_topic, dead_letter_topic
        self.derived: TopicPartition | None = None  # learned by start()
        self.dead: TopicPartition | None = None
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            transactional_id=transactional_id(group, source.topic, source.partition),
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=MAX_BATCH_BYTES,
            # A batch holds one record when that record alone is larger (a big table value).
            max_request_size=STATE_MAX_BYTES + HEADERS_ROOM,
            retry_backoff_ms=RETRY_BACKOFF_MS,
        )
        shorten_concurrent_transactions_backoff()

    async def start(self) -> None:
        """Register the transactional id: fences the previous owner, ends its transaction."""
        try:
            await self.producer.start()
            self.derived = await self._partition_of(self.derived_topic)
            self.dead = await self._partition_of(self.dead_letter_topic)
        except BaseException:
            await self.producer.stop()
            raise

    async def _partition_of(self, topic: str) -> TopicPartition:
        """The partition of `topic` that the source partition writes to."""
        partitions = sorted(await self.producer.partitions_for(topic))
        return TopicPartition(topic, partitions[self.source.partition % len(partitions)])

    async def stop(self) -> None:
        try:
            await self.producer.stop()
        except KafkaError as exc:  # a fenced or failed producer: nothing left to flush
            log.debug("%s: producer stopped with %r", self.source, exc)

    async def commit(
        self, changes: Iterable[tuple[bytes, bytes | None, Any]], effects: Effects
    ) -> int | None:
        """Commit a batch (see the module docstring); the changelog offset after it (None when
        it wrote no changelog record). Raises `PartitionLost` when fenced."""
        producer = self.producer
        try:
            # Step 1
            await producer.begin_transaction()
            try:
                # Step 2
                sent = await self._append(self.changelog, ((k, v, []) for k, v, _ in changes))
                # Step 3: to the source partition's own partition of each topic (the derived
                # topic's key stays the channel): a transaction touches as few partitions as it
                # can, and a channel's events (all from one location) stay in order.
                pending = [f for f, _ in await self._append(self.derived, _derived(effects))]
                pending += [f for f, _ in await self._append(self.dead, effects.dead_letters)]
                metadata = await asyncio.gather(*(f for f, _ in sent), *pending)
                # Step 4
                await producer.commit_transaction()
            except BaseException:
                await self._abort()
                raise
        except FENCED as exc:
            raise PartitionLost(f"{self.source}: another worker owns it now ({exc!r})") from exc
        if not sent:
            return None
        # The offset after the last changelog record: its batch's base offset plus its records.
        return int(metadata[len(sent) - 1].offset) + sent[-1][1]

    async def _append(self, tp: TopicPartition | None, records: Iterable[Record]) -> list[Any]:
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

    async def _send(self, batch: Any, tp: TopicPartition | None) -> Any:
        assert tp is not None, "start() learns the partitions"
        batch.close()
        return await self.producer.send_batch(batch, tp.topic, partition=tp.partition)

    async def _abort(self) -> None:
        try:
            await self.producer.abort_transaction()
        except Exception as exc:  # the producer is unusable; its owner replaces it
            log.warning("%s: abort failed (%r)", self.source, exc)
