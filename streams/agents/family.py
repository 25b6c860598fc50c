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
from streams.codec import dumps, loads_object
from streams.events import BadRecord, Event, event_type
from streams.topics import RAW_WEBHOOKS

__all__ = ["Family", "Handler", "Topics", "install_families"]

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
        self.raw = _bytes_topic(app, raw)
        self.derived = _bytes_topic(app, derived)
        self.dead_letters = _bytes_topic(app, dead_letters)


def _bytes_topic(app: faust.App, name: str) -> faust.TopicT:
    # Records stay bytes: each family decodes only the records it owns, once.
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


Family = tuple[str, Iterable[str], Handler]  # (name, event types it owns, its handler)


def install_families(app: faust.App, topics: Topics, families: Iterable[Family]) -> None:
    """One agent reads the raw topic and hands each record to the families that own its type.

    Why one agent and not one per family: Faust delivers every record to every agent subscribed
    to the topic, and its per-record, per-agent cost (event, queue, ack, sensors) dominated the
    worker: five agents each iterating all raw records ran at about 1% of a bare consumer. Each
    family still folds only its own types, in log order, with its own failure handling; a record
    is decoded once, however many families own its type. Records no family owns are counted per
    type; a record without headers whose bytes are not a JSON object is dead-lettered.
    """
    owners: dict[str, list[tuple[str, Handler]]] = {}
    for family, types, handle in families:
        for kind in types:
            owners.setdefault(kind, []).append((family, handle))

    async def agent(stream: faust.StreamT) -> None:
        async for record in stream.events():
            message = record.message
            headers, kind = _typed(message)
            owned = owners.get(kind)
            if owned:
                await process(message, headers, owned)
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
        message: Any, headers: dict[str, bytes], owned: list[tuple[str, Handler]]
    ) -> None:
        try:
            event = Event.from_record(message.value, headers, message.partition, message.offset)
        except BadRecord as exc:
            for family, _ in owned:
                await _dead_letter(topics, message, headers, family, str(exc))
            return
        for family, handle in owned:
            try:
                derived = await _with_retries(handle, event, family)
            except BadRecord as exc:
                await _dead_letter(topics, message, headers, family, str(exc))
                continue
            except CONTENT_ERRORS as exc:
                log.exception("%s: record %s:%s failed", family, message.partition, message.offset)
                await _dead_letter(topics, message, headers, family, f"{type(exc).__name__}: {exc}")
                continue
            metrics.count("streams_records_total", family=family)
            if event.live:
                for item in derived:
                    await topics.derived.send(key=item["channel"].encode(), value=dumps(item))
                    metrics.count("streams_derived_events_total", name=item["name"])

    app.agent(topics.raw, name="streams.agents.families")(agent)


async def _with_retries(handle: Handler, event: Event, family: str) -> list[dict[str, Any]]:
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


def _typed(message: Any) -> tuple[dict[str, bytes], str]:
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
