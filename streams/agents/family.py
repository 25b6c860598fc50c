"""The agent that runs the families: pick each record's families, decode, handle, emit.

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
    """One family as the dispatcher runs it: its handler folds into staged copies of the tables
    (see `streams.agents.staged`), applied only once the record's derived events are
    acknowledged, together with the family's position in the partition."""

    def __init__(self, name: str, make_handler: Callable[[Tables], Handler], tables: Tables):
        self.name = name
        self.staged = [Staged(table) for table in tables.values()]
        self.handle = make_handler(dict(zip(tables, self.staged, strict=True)))

    def fold(self, event: Event) -> list[dict[str, Any]]:
        for table in self.staged:  # nothing of a failed attempt is kept
            table.discard()
        return self.handle(event)

    def apply(self) -> None:
        for table in self.staged:
            table.apply()


Family = tuple[str, Iterable[str], Callable[[Tables], Handler]]  # name, its types, its handler


def install_families(
    app: faust.App, topics: Topics, families: Iterable[Family], tables: Tables
) -> None:
    """One agent reads the raw topic and hands each record to the families that own its type.

    Why one agent and not one per family: Faust delivers every record to every agent subscribed
    to a topic, and its per-record, per-agent cost (event, queue, ack, sensors) dominated the
    worker (one agent per family, each iterating every record, ran at about 1% of a bare
    consumer). Each family still folds only its own types, in log order, with its own failure
    handling and its own position; a record is decoded once. A record the tables already hold (a
    worker killed before committing it) is skipped by each family that folded it. Records no
    family owns are counted per type; a record without headers whose bytes are not a JSON object
    is dead-lettered.
    """
    owners: dict[str, list[_Family]] = {}
    for name, types, make_handler in families:
        family = _Family(name, make_handler, tables)
        for kind in types:
            owners.setdefault(kind, []).append(family)
    folded = tables[positions.POSITIONS]

    async def agent(stream: faust.StreamT) -> None:
        async for record in stream.events():
            message = record.message
            headers, kind = headers_and_type(message)
            owned = owners.get(kind)
            if owned:
                # A dead letter re-driven by `streams dlq retry` is meant for the family that
                # failed it; the others processed the original already.
                retried_by = headers.get(REDRIVE_FAMILY)
                for family in owned:
                    if retried_by is None or retried_by == family.name.encode():
                        await process(family, message, headers)
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

    async def process(family: _Family, message: Any, headers: dict[str, bytes]) -> None:
        name = family.name
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
        if event.live and derived:
            sent = [
                await topics.derived.send(key=item["channel"].encode(), value=dumps(item))
                for item in derived
            ]
            await asyncio.gather(*sent)  # acknowledged by Kafka before the tables change
            for item in derived:
                metrics.count("streams_derived_events_total", name=item["name"])
        # The writes and the position in one synchronous step: no await in between.
        family.apply()
        positions.record_folded(folded, name, message.partition, message.offset)
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
