"""The loop every family agent shares: pick the family's records, decode, handle, emit.

Faust acks a record when an agent raises, and restarts the agent: the record would be silently
gone. So failures are handled here, per record:
- a record the family cannot use (`BadRecord`, or any error its handler raises on its content) goes
  to the dead-letter topic with the reason and its source coordinates, and the partition moves on;
- a transient failure (Kafka, the network) is retried with backoff a bounded number of times,
  then the worker stops on purpose without committing the record, so it is processed again after
  the restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import faust

from streams import metrics
from streams.agents.staged import Staged
from streams.codec import dumps, loads_object
from streams.dlq import REDRIVE_FAMILY
from streams.events import BadRecord, Event, event_type
from streams.tables import positions
from streams.tables.projection import Tables
from streams.topics import RAW_WEBHOOKS

__all__ = [
    "Handler",
    "Topics",
    "bytes_topic",
    "headers_and_type",
    "install_family",
    "install_unknown",
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


def install_family(
    app: faust.App,
    topics: Topics,
    family: str,
    types: Iterable[str],
    make_handler: Callable[[Tables], Handler],
    tables: Tables,
) -> None:
    """The family's handler folds each record into staged copies of `tables`; the writes are
    applied once the record's derived events are acknowledged (see `streams.agents.staged`),
    together with the record's position, so a record the tables already hold (a worker killed
    before committing it) is skipped, not folded twice."""
    wanted = frozenset(types)
    staged = [Staged(table) for table in tables.values()]
    handle = make_handler(dict(zip(tables, staged, strict=True)))
    folded = tables[positions.POSITIONS]

    def fold(event: Event) -> list[dict[str, Any]]:
        for table in staged:  # nothing of a failed attempt is kept
            table.discard()
        return handle(event)

    async def agent(stream: faust.StreamT) -> None:
        async for record in stream.events():
            message = record.message
            headers, kind = headers_and_type(message)
            # A dead letter re-driven by `streams dlq retry` is meant for the family that failed
            # it; the others processed the original already.
            retried_by = headers.get(REDRIVE_FAMILY)
            if kind in wanted and (retried_by is None or retried_by == family.encode()):
                await process(message, headers)

    async def process(message: Any, headers: dict[str, bytes]) -> None:
        if positions.already_folded(folded, family, message.partition, message.offset):
            metrics.count("streams_records_already_folded_total", family=family)
            return
        try:
            event = Event.from_record(message.value, headers, message.partition, message.offset)
            derived = await with_retries(fold, event, family)
        except BadRecord as exc:
            await _dead_letter(topics, message, headers, family, str(exc))
            return
        except CONTENT_ERRORS as exc:
            log.exception("%s: record %s:%s failed", family, message.partition, message.offset)
            await _dead_letter(topics, message, headers, family, f"{type(exc).__name__}: {exc}")
            return
        if event.live and derived:
            sent = [
                await topics.derived.send(key=item["channel"].encode(), value=dumps(item))
                for item in derived
            ]
            await asyncio.gather(*sent)  # acknowledged by Kafka before the tables change
            for item in derived:
                metrics.count("streams_derived_events_total", name=item["name"])
        # The writes and the position in one synchronous step: no await in between.
        for table in staged:
            table.apply()
        positions.record_folded(folded, family, message.partition, message.offset)
        metrics.count("streams_records_total", family=family)

    agent.__name__ = family
    app.agent(topics.raw, name=f"streams.agents.{family}")(agent)


def install_unknown(app: faust.App, topics: Topics, known: Iterable[str]) -> None:
    """Records no family owns: a type nobody knows stays in the log and is counted per type; a
    record without headers whose bytes are not a JSON object goes to the dead letters."""
    known_types = frozenset(known)

    async def unknown(stream: faust.StreamT) -> None:
        async for record in stream.events():
            message = record.message
            headers, kind = headers_and_type(message)
            if not kind:
                await _dead_letter(
                    topics,
                    message,
                    headers,
                    "unknown",
                    "no event-type header and the body is not a JSON object",
                )
            elif kind not in known_types:
                metrics.count("streams_unknown_types_total", type=kind)

    app.agent(topics.raw, name="streams.agents.unknown")(unknown)


async def with_retries(handle: Callable[[Event], Any], event: Event, family: str) -> Any:
    delay = 0.2
    for attempt in range(1, RETRIES + 1):
        try:
            return handle(event)
        except CONTENT_ERRORS:
            raise
        except Exception as exc:
            if attempt == RETRIES:
                log.critical(
                    "%s: transient failure persists after %d attempts (%r); stopping the "
                    "worker without committing %s:%s",
                    family,
                    attempt,
                    exc,
                    event.partition,
                    event.offset,
                )
                logging.shutdown()
                os._exit(EXIT_TRANSIENT_FAILURE)
            log.warning("%s: transient failure (%r), retrying in %.1fs", family, exc, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


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
