"""The agent that runs the families: pick each record's families, decode, handle, emit.

Faust acks what an agent holds when it raises, and restarts the agent: the records would be
silently gone. So failures are handled here, per record:
- a record the family cannot use (`BadRecord`, or any error its handler raises on its content) goes
  to the dead-letter topic with the reason and its source coordinates, and the partition moves on;
- a transient failure (Kafka, the network) is retried with backoff a bounded number of times,
  then the worker stops on purpose without committing the record's batch, so it is processed
  again after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import faust
from faust.streams import Stream

from streams import metrics
from streams.agents.effects import Effects, TooLarge
from streams.agents.staged import Staged
from streams.codec import loads_object
from streams.dlq import REDRIVE_FAMILY
from streams.events import BadRecord, Event, event_type
from streams.tables import positions
from streams.tables.projection import Tables
from streams.topics import RAW_WEBHOOKS

__all__ = [
    "Family",
    "Handler",
    "Topics",
    "bytes_topic",
    "headers_and_type",
    "install_families",
    "stop_without_committing",
    "with_retries",
]

log = logging.getLogger(__name__)

Handler = Callable[[Event], list[dict[str, Any]]]
# Errors a record's content causes; anything else (Kafka, the network, Faust's own state) is
# treated as transient: retried, then the worker stops rather than skip the record.
CONTENT_ERRORS = (BadRecord, ValueError, TypeError, KeyError, AttributeError, ArithmeticError)
RETRIES = 5
EXIT_TRANSIENT_FAILURE = 75  # EX_TEMPFAIL: restart me


class Topics:
    """The Faust topics the agents use, created once by the composition root."""

    def __init__(self, app: faust.App, raw: str, derived: str, dead_letters: str) -> None:
        self.raw = bytes_topic(app, raw)
        self.derived = bytes_topic(app, derived)
        self.dead_letters = bytes_topic(app, dead_letters)


def bytes_topic(app: faust.App, name: str) -> faust.TopicT:
    # Records stay bytes: each family decodes only the records it owns, once.
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


class _Family:
    """One family as the agent runs it: its handler folds one record at a time into staged
    copies of the tables (see `streams.agents.staged`), which join the batch's writes when the
    record succeeds, with the family's position in the record's partition."""

    def __init__(
        self, name: str, make_handler: Callable[[Tables], Handler], batch: dict[str, Staged]
    ):
        self.name = name
        self.batch = batch
        self.record = {table: Staged(staged) for table, staged in batch.items()}
        self.handle = make_handler(dict(self.record))

    def fold(self, event: Event) -> list[dict[str, Any]]:
        for table in self.record.values():  # nothing of a failed attempt is kept
            table.discard()
        return self.handle(event)

    def keep(self, record: Any) -> None:
        for name, table in self.record.items():
            self.batch[name].origin = record
            table.apply()
        message = record.message
        positions.record_folded(
            self.batch[positions.POSITIONS], self.name, message.partition, message.offset
        )


Family = tuple[str, Iterable[str], Callable[[Tables], Handler]]  # name, its types, its handler

BATCH = 500
# Seconds the agent collects records before it folds them (fewer when BATCH arrive sooner).
# Faust's `take_events` pulls records one by one only while it waits, never while a batch is
# folded, so a short wait gives small batches whose commits dominate: with 5 ms a worker fell
# behind at 300 webhooks/s and folded a pre-filled log at 386/s; with 50 ms it kept up at
# 300/s and folded 593-613/s (200 ms: 840-1,024/s). A record waits at most this long to start.
BATCH_WITHIN = 0.05


def install_families(
    app: faust.App, topics: Topics, families: Iterable[Family], tables: Tables, effects: Effects
) -> None:
    """One agent reads the raw topic in batches and hands each record to the families that own
    its type.

    Why one agent and not one per family: Faust delivers every record to every agent subscribed
    to a topic, and its per-record, per-agent cost (event, queue, ack, sensors) dominated the
    worker. Each family still folds only its own types, in log order, with its own failure
    handling and its own position; a record is decoded once. Records no family owns are
    counted per type; a record without headers whose bytes are not a JSON object is
    dead-lettered.

    Why batches: a batch's table writes and derived events are committed together
    (`streams.agents.effects`), with one wait for Kafka per batch instead of one per record,
    and each changed key written once. Faust acks (and so commits) a batch's records only after
    that. A record the tables already hold is skipped by each family that folded it.
    """
    batch = {name: Staged(table) for name, table in tables.items()}
    owners: dict[str, list[_Family]] = {}
    for name, types, make_handler in families:
        family = _Family(name, make_handler, batch)
        for kind in types:
            owners.setdefault(kind, []).append(family)
    folded = batch[positions.POSITIONS]

    async def agent(stream: faust.StreamT) -> None:
        # `take_events` is on Faust's Stream, not its StreamT interface.
        async for records in cast(Stream, stream).take_events(BATCH, within=BATCH_WITHIN):
            async with effects.lock:
                try:
                    await effects.recover(records)
                    await fold_and_commit(records)
                except Exception as exc:
                    # Faust would ack the whole batch on the way out: stop before it can.
                    first = records[0].message
                    stop_without_committing(f"batch from {first.partition}:{first.offset}", exc)

    async def fold_and_commit(records: Sequence[Any]) -> None:
        derived: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            await dispatch(record, derived)
        try:
            await effects.commit(batch, derived)
        except TooLarge:
            if len(records) == 1:
                raise
            # Nothing was sent: fold each half again and commit it on its own.
            for table in batch.values():
                table.discard()
            half = len(records) // 2
            await fold_and_commit(records[:half])
            await fold_and_commit(records[half:])

    async def dispatch(record: Any, derived: dict[int, list[dict[str, Any]]]) -> None:
        message = record.message
        headers, kind = headers_and_type(message)
        owned = owners.get(kind)
        if owned:
            # A dead letter re-driven by `streams dlq retry` is meant for the family that
            # failed it; the others processed the original already.
            retried_by = headers.get(REDRIVE_FAMILY)
            for family in owned:
                if retried_by is None or retried_by == family.name.encode():
                    await process(family, record, headers, derived)
        elif not kind:
            await _dead_letter(
                topics,
                message,
                headers,
                "unknown",
                "no event-type header and the body is not a JSON object",
            )
        else:
            metrics.count("streams_unknown_types_total", type=kind)

    async def process(
        family: _Family,
        record: Any,
        headers: dict[str, bytes],
        derived: dict[int, list[dict[str, Any]]],
    ) -> None:
        name, message = family.name, record.message
        if positions.already_folded(folded, name, message.partition, message.offset):
            metrics.count("streams_records_already_folded_total", family=name)
            return
        try:
            event = Event.from_record(message.value, headers, message.partition, message.offset)
            emitted = await with_retries(family.fold, event, name)
        except BadRecord as exc:
            await _dead_letter(topics, message, headers, name, str(exc))
            return
        except CONTENT_ERRORS as exc:
            log.exception("%s: record %s:%s failed", name, message.partition, message.offset)
            await _dead_letter(topics, message, headers, name, f"{type(exc).__name__}: {exc}")
            return
        family.keep(record)
        if event.live and emitted:
            derived.setdefault(message.partition, []).extend(emitted)
            for item in emitted:
                metrics.count("streams_derived_events_total", name=item["name"])
        metrics.count("streams_records_total", family=name)

    app.agent(topics.raw, name="streams.agents.families")(agent)


async def with_retries(handle: Callable[[Event], Any], event: Event, family: str) -> Any:
    delay = 0.2
    for attempt in range(1, RETRIES + 1):
        try:
            return handle(event)
        except CONTENT_ERRORS:
            raise
        except Exception as exc:
            if attempt == RETRIES:
                stop_without_committing(
                    f"{family}: record {event.partition}:{event.offset}, {attempt} attempts", exc
                )
            log.warning("%s: transient failure (%r), retrying in %.1fs", family, exc, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def stop_without_committing(what: str, exc: BaseException) -> None:
    log.critical("transient failure (%s): %r; stopping the worker without committing", what, exc)
    logging.shutdown()
    os._exit(EXIT_TRANSIENT_FAILURE)


async def _dead_letter(
    topics: Topics, message: Any, headers: dict[str, bytes], family: str, reason: str
) -> None:
    log.warning("%s: dead-lettering %s:%s: %s", family, message.partition, message.offset, reason)
    dead_headers = [
        *headers.items(),
        ("error", reason.encode()),
        ("family", family.encode()),
        ("source-topic", RAW_WEBHOOKS.name.encode()),
        ("source-partition", str(message.partition).encode()),
        ("source-offset", str(message.offset).encode()),
    ]
    await topics.dead_letters.send(key=message.key, value=message.value, headers=dead_headers)
    metrics.count("streams_dead_letters_total", family=family)


def headers_and_type(message: Any) -> tuple[dict[str, bytes], str]:
    """A raw record's headers and event type: from its header, or (for a record written without
    headers, not by our ingress) from its body; "" when neither says."""
    headers = dict(message.headers or [])
    kind = headers.get("event-type", b"").decode()
    if not kind:
        try:
            kind = event_type(loads_object(message.value or b""))
        except ValueError:
            kind = ""
    return headers, kind
