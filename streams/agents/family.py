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
import weakref
from collections.abc import Callable, Iterable
from typing import Any, cast

import faust
from faust.streams import Stream, _current_event

from streams import metrics
from streams.agents.staged import Staged
from streams.codec import dumps, loads_object
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
    record succeeds. `folded` holds, per raw partition, the last record it folded in the batch."""

    def __init__(
        self, name: str, make_handler: Callable[[Tables], Handler], batch: dict[str, Staged]
    ):
        self.name = name
        self.batch = batch
        self.record = {table: Staged(staged) for table, staged in batch.items()}
        self.handle = make_handler(dict(self.record))
        self.folded: dict[int, Any] = {}

    def fold(self, event: Event) -> list[dict[str, Any]]:
        for table in self.record.values():  # nothing of a failed attempt is kept
            table.discard()
        return self.handle(event)

    def keep(self, record: Any) -> None:
        for name, table in self.record.items():
            self.batch[name].origin = record
            table.apply()
        self.folded[record.message.partition] = record


Family = tuple[str, Iterable[str], Callable[[Tables], Handler]]  # name, its types, its handler

BATCH = 500
BATCH_WITHIN = 0.005  # seconds the agent waits to fill a batch: latency traded for throughput
FLUSH_TIMEOUT = 30.0  # seconds


def install_families(
    app: faust.App, topics: Topics, families: Iterable[Family], tables: Tables
) -> None:
    """One agent reads the raw topic in batches and hands each record to the families that own
    its type.

    Why one agent and not one per family: Faust delivers every record to every agent subscribed
    to a topic, and its per-record, per-agent cost (event, queue, ack, sensors) dominated the
    worker. Each family still folds only its own types, in log order, with its own failure
    handling and its own position; a record is decoded once. Records no family owns are
    counted per type; a record without headers whose bytes are not a JSON object is
    dead-lettered.

    Why batches: a record's table writes wait for Kafka to acknowledge its derived events (see
    `streams.agents.staged`). Waiting once per batch instead of once per record, and writing
    each changed key once per batch, is what makes the worker fast; Faust acks (and so commits)
    a batch's records only after its writes are applied. A record the tables already hold (a
    worker killed before committing it) is skipped by each family that folded it.
    """
    batch = {name: Staged(table) for name, table in tables.items()}
    owners: dict[str, list[_Family]] = {}
    every: list[_Family] = []
    for name, types, make_handler in families:
        family = _Family(name, make_handler, batch)
        every.append(family)
        for kind in types:
            owners.setdefault(kind, []).append(family)
    folded = tables[positions.POSITIONS]

    async def agent(stream: faust.StreamT) -> None:
        # `take_events` is on Faust's Stream, not its StreamT interface.
        async for records in cast(Stream, stream).take_events(BATCH, within=BATCH_WITHIN):
            try:
                acks: list[Any] = []
                for record in records:
                    await dispatch(record, acks)
                await asyncio.gather(*acks)  # derived events acknowledged before tables change
            except Exception as exc:
                # Faust would ack the whole batch on the way out: stop before it can.
                first = records[0].message
                _stop_without_committing(f"batch from {first.partition}:{first.offset}", exc)
            apply_batch()
            # Wait for this batch's changelog writes: Faust's recovery replays a changelog from
            # its last acknowledged offset onto RocksDB, so an older write still in flight when
            # the worker dies could land over a newer one the next batch makes.
            await _flush(app.producer)

    async def dispatch(record: Any, acks: list[Any]) -> None:
        message = record.message
        headers, kind = headers_and_type(message)
        owned = owners.get(kind)
        if owned:
            # A dead letter re-driven by `streams dlq retry` is meant for the family that
            # failed it; the others processed the original already.
            retried_by = headers.get(REDRIVE_FAMILY)
            for family in owned:
                if retried_by is None or retried_by == family.name.encode():
                    await process(family, record, headers, acks)
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
        family: _Family, record: Any, headers: dict[str, bytes], acks: list[Any]
    ) -> None:
        name, message = family.name, record.message
        if positions.already_folded(folded, name, message.partition, message.offset):
            metrics.count("streams_records_already_folded_total", family=name)
            return
        try:
            event = Event.from_record(message.value, headers, message.partition, message.offset)
            derived = await with_retries(family.fold, event, name)
        except BadRecord as exc:
            await _dead_letter(topics, message, headers, name, str(exc))
            return
        except CONTENT_ERRORS as exc:
            log.exception("%s: record %s:%s failed", name, message.partition, message.offset)
            await _dead_letter(topics, message, headers, name, f"{type(exc).__name__}: {exc}")
            return
        family.keep(record)
        if event.live:
            for item in derived:
                acks.append(
                    await topics.derived.send(key=item["channel"].encode(), value=dumps(item))
                )
                metrics.count("streams_derived_events_total", name=item["name"])
        metrics.count("streams_records_total", family=name)

    def apply_batch() -> None:
        # The writes and the positions in one synchronous step: no await in between.
        for table in batch.values():
            table.apply(before_write=_writing_for)
        for family in every:
            for partition, record in family.folded.items():
                _writing_for(record)
                positions.record_folded(folded, family.name, partition, record.message.offset)
            family.folded.clear()
        _writing_for(None)

    app.agent(topics.raw, name="streams.agents.families")(agent)


async def _flush(producer: Any) -> None:
    """Until every message sent so far (table writes included) is acknowledged by Kafka.

    Faust's `Producer.flush` is not enough on its own: its buffer's `flush` gives up as soon as
    one message takes over 0.1s to be handed to aiokafka (`ProducerBuffer.flush_atmost`), and
    the buffer's sender takes a message off its queue before handing it over, so an empty queue
    is not a sent message. Wait until the queue is empty and the sender idle (waiting for the
    next message), then flush aiokafka."""
    buffer = producer.buffer
    await producer.flush()
    deadline = asyncio.get_running_loop().time() + FLUSH_TIMEOUT
    while buffer.size or not getattr(buffer.pending, "_getters", True):
        if asyncio.get_running_loop().time() > deadline:  # a stopping producer
            log.warning("producer buffer not drained after %ss", FLUSH_TIMEOUT)
            break
        await asyncio.sleep(0.005)
    await producer.flush()


def _writing_for(record: Any) -> None:
    """Make `record` the one Faust attributes the next table write to: Faust stores and logs a
    write in the partition of the record being processed, which it reads from this context
    variable (its own iteration sets it, but a batch is applied after the iteration)."""
    _current_event.set(weakref.ref(record) if record is not None else None)


async def with_retries(handle: Callable[[Event], Any], event: Event, family: str) -> Any:
    delay = 0.2
    for attempt in range(1, RETRIES + 1):
        try:
            return handle(event)
        except CONTENT_ERRORS:
            raise
        except Exception as exc:
            if attempt == RETRIES:
                _stop_without_committing(
                    f"{family}: record {event.partition}:{event.offset}, {attempt} attempts", exc
                )
            log.warning("%s: transient failure (%r), retrying in %.1fs", family, exc, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _stop_without_committing(what: str, exc: BaseException) -> None:
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
