"""Dead letters: list, show and re-drive the records on `ghl.webhooks.dlq.v1`.

A dead letter is the offending record (its key, bytes and headers) plus `error`, `family`,
`source-topic`, `source-partition` and `source-offset` headers (see `streams.agents.family`; the
publisher's carry no `family` and come from `streams.derived.v1`).

Re-driving (`streams dlq retry`), once the cause is fixed:
1. The record is appended again to the topic it came from, with its key (so the same partition)
   and its original bytes and headers: `webhook-id`, `event-type`, `received-at` and `source`
   are kept, so the folds recognise it (they are idempotent by webhook id and message id) and a
   re-driven import or backfill stays silent. Two headers are added: `redriven-from` (the dead
   letter's coordinates) and `redrive-family`, which makes every other family skip the copy: it
   already processed the original, so the copy can change nothing but that family's state.
2. Once Kafka acknowledged the copy, a marker is appended to the dead letter's own DLQ partition
   (empty value, header `dlq-redriven` naming the dead letter, `redriven-to` the copy). Every
   reader of the DLQ sees the markers, so no operator re-drives a dead letter twice by accident
   (`--again` does it on purpose). A crash between the two steps leaves the dead letter
   unmarked; re-driving it again is harmless, because the folds are idempotent.
A copy that fails again becomes a new dead letter (with `redriven-from`), retryable in its turn.

The copy is folded at its new position in the log, like backfilled history: a stale
"set" event (an unread count, an assignment) re-driven late applies late.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.codec import loads
from streams.topics import DERIVED, DLQ, partition_ids

__all__ = [
    "REDRIVE_FAMILY",
    "DeadLetter",
    "Ledger",
    "Selection",
    "marker_headers",
    "parse_coordinates",
    "read_ledger",
    "redrive",
    "redrive_headers",
    "redriven_for",
    "select",
    "show",
]

REDRIVEN_FROM = "redriven-from"
REDRIVE_FAMILY = "redrive-family"
MARKER = "dlq-redriven"
REDRIVEN_TO = "redriven-to"
# Headers the dead-letter step adds; a re-driven copy carries the record's own headers only.
_DEAD_LETTER_HEADERS = frozenset(
    {"error", "family", "source-topic", "source-partition", "source-offset"}
)
_REDRIVE_HEADERS = frozenset({REDRIVEN_FROM, REDRIVE_FAMILY})


def redriven_for(headers: dict[str, bytes]) -> str | None:
    """The family a re-driven dead letter is meant for; None for any other record."""
    return headers[REDRIVE_FAMILY].decode() if REDRIVE_FAMILY in headers else None


Coordinates = tuple[int, int]  # (partition, offset) on the DLQ topic


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int  # epoch ms, when it was dead-lettered

    def header(self, name: str) -> str:
        return dict(self.headers).get(name, b"").decode(errors="replace")

    @property
    def coordinates(self) -> Coordinates:
        return self.partition, self.offset

    @property
    def source_topic(self) -> str:
        return self.header("source-topic")

    @property
    def family(self) -> str:
        family = self.header("family")
        if not family and self.source_topic == DERIVED.name:
            return "publisher"
        return family or "unknown"

    def summary(self) -> dict[str, Any]:
        return {
            "dlq": f"{self.partition}:{self.offset}",
            "family": self.family,
            "error": self.header("error"),
            "source": f"{self.source_topic}:{self.header('source-partition') or '?'}"
            f":{self.header('source-offset') or '?'}",
            "webhook_id": self.header("webhook-id") or None,
            "event_type": self.header("event-type") or None,
            "redriven_from": self.header(REDRIVEN_FROM) or None,
            "dead_lettered_at": self.timestamp,
        }


@dataclass(frozen=True)
class Ledger:
    """The DLQ as read: its dead letters, and which of them were re-driven, to where."""

    letters: tuple[DeadLetter, ...]
    redriven: dict[Coordinates, str]

    def state(self, letter: DeadLetter) -> str:
        where = self.redriven.get(letter.coordinates)
        return f"re-driven to {where}" if where else "pending"


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operator means: the listed coordinates (any of them), and/or a
    family and an error substring (all must match). `everything` selects all."""

    coordinates: frozenset[Coordinates] = frozenset()
    family: str | None = None
    error: str | None = None
    everything: bool = False

    @property
    def empty(self) -> bool:
        return not (self.coordinates or self.family or self.error or self.everything)

    def matches(self, letter: DeadLetter) -> bool:
        return (
            (not self.coordinates or letter.coordinates in self.coordinates)
            and (self.family is None or letter.family == self.family)
            and (self.error is None or self.error.lower() in letter.header("error").lower())
        )


def parse_coordinates(text: str) -> Coordinates:
    """`PARTITION:OFFSET` as shown by `streams dlq list`."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"{text!r} is not PARTITION:OFFSET (e.g. 2:15)")
    return int(partition), int(offset)


def select(
    ledger: Ledger, selection: Selection, *, again: bool = False
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(to re-drive, already re-driven and skipped) for `selection`; `again` re-drives those too."""
    chosen = [letter for letter in ledger.letters if selection.matches(letter)]
    skipped = [] if again else [x for x in chosen if x.coordinates in ledger.redriven]
    return [x for x in chosen if x not in skipped], skipped


def redrive_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The copy's headers: the record's own, plus where it came from and which family retries it."""
    own = [
        (name, value)
        for name, value in letter.headers
        if name not in _DEAD_LETTER_HEADERS and name not in _REDRIVE_HEADERS
    ]
    return [
        *own,
        (REDRIVEN_FROM, f"{DLQ.name}:{letter.partition}:{letter.offset}".encode()),
        (REDRIVE_FAMILY, letter.family.encode()),
    ]


def marker_headers(letter: DeadLetter, copy: str) -> list[tuple[str, bytes]]:
    return [
        (MARKER, f"{letter.partition}:{letter.offset}".encode()),
        (REDRIVEN_TO, copy.encode()),
        ("redriven-at", str(int(time.time() * 1000)).encode()),
    ]


def ledger_from(records: Iterable[DeadLetter]) -> Ledger:
    """Split what the DLQ holds into dead letters and re-drive markers."""
    letters, redriven = [], {}
    for record in records:
        marker = record.header(MARKER)
        if marker:
            redriven[parse_coordinates(marker)] = record.header(REDRIVEN_TO)
        else:
            letters.append(record)
    return Ledger(tuple(letters), redriven)


def show(letter: DeadLetter, state: str) -> str:
    """A dead letter for a person: where it is, why, its headers and its body."""
    try:
        # The standard library's indent-by-2 output, for people; orjson for the hot paths.
        rendered = json.dumps(loads(letter.value), indent=2, ensure_ascii=False)
    except ValueError:
        rendered = f"(not JSON, {len(letter.value)} bytes) {letter.value[:2000]!r}"
    headers = "\n".join(
        f"  {name}: {value.decode(errors='replace')}" for name, value in letter.headers
    )
    summary = letter.summary()
    return (
        f"dead letter {summary['dlq']} on {DLQ.name} ({state})\n"
        f"family: {summary['family']}\nerror: {summary['error']}\nsource: {summary['source']}\n"
        f"key: {letter.key.decode(errors='replace') if letter.key else None}\n"
        f"headers:\n{headers}\nbody:\n{rendered}"
    )


async def read_ledger(bootstrap: str, timeout: float = 60.0) -> Ledger:
    """Read the whole DLQ topic, from its first record to its end as of now (no consumer group:
    reading commits nothing)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = [TopicPartition(DLQ.name, p) for p in await partition_ids(admin, DLQ.name)]
    finally:
        await admin.close()
    if not partitions:
        return Ledger((), {})
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[DeadLetter] = []
        deadline = time.monotonic() + timeout

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {DLQ.name} to its end in {timeout:.0f}s")
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, batch in batches.items():
                records.extend(
                    DeadLetter(
                        tp.partition,
                        r.offset,
                        r.key,
                        r.value or b"",
                        tuple(r.headers or ()),
                        r.timestamp,
                    )
                    for r in batch
                    if r.offset < ends[tp]
                )
        return ledger_from(sorted(records, key=lambda r: (r.partition, r.offset)))
    finally:
        await consumer.stop()


async def redrive(bootstrap: str, letters: Sequence[DeadLetter]) -> list[tuple[DeadLetter, str]]:
    """Re-drive `letters` in DLQ order, each copy acknowledged before its marker is written;
    return each letter with where its copy went (`topic:partition:offset`)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    done = []
    try:
        for letter in letters:
            if not letter.source_topic:
                raise ValueError(f"dead letter {letter.partition}:{letter.offset} names no source")
            # Step 1: the copy, where the record came from, acknowledged by every replica.
            written = await producer.send_and_wait(
                letter.source_topic, letter.value, key=letter.key, headers=redrive_headers(letter)
            )
            copy = f"{written.topic}:{written.partition}:{written.offset}"
            # Step 2: the marker, beside the dead letter, so nobody re-drives it again.
            await producer.send_and_wait(
                DLQ.name,
                b"",
                key=letter.key,
                partition=letter.partition,
                headers=marker_headers(letter, copy),
            )
            done.append((letter, copy))
    finally:
        await producer.stop()
    return done
