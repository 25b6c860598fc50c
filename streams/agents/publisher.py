"""The publisher: derived events from `streams.derived.v1` to Ably.

It reads the topic with its own aiokafka consumer (group `streams-publisher`, committed records
only: a batch's derived events appear when its transaction commits) and commits a batch's offsets
only once the batch is delivered, so a worker that dies re-delivers at most its batch in flight
(same ids: Ably drops the repeats). A fetch returns as soon as events are there: nothing waits
on a timer while a message is ready.

Batches what the topic offers (one Ably batch publish per round), each message its own BatchSpec
so its id de-duplicates on its own. Per-channel order is kept: a round carries at most one message
per channel, and a round is retried until every retryable failure in it went through before the
next round starts. Retryable failures (network, 5xx, 429) back off and retry without limit: a
message is never skipped. Permanent failures go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from streams import metrics
from streams.ably_sink import Sink
from streams.codec import dumps, loads
from streams.topics import DERIVED, DLQ

__all__ = ["GROUP", "deliver", "publisher", "rounds", "supervised"]

log = logging.getLogger(__name__)

GROUP = "streams-publisher"
BATCH = 500
MAX_BACKOFF = 30.0

DeadLetter = Callable[[dict[str, Any], str], Awaitable[None]]


def rounds(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split events, in order, into rounds holding at most one event per channel."""
    result: list[list[dict[str, Any]]] = []
    depth: dict[str, int] = {}
    for event in events:
        level = depth.get(event["channel"], 0)
        depth[event["channel"]] = level + 1
        if level == len(result):
            result.append([])
        result[level].append(event)
    return result


def batch_spec(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "channels": event["channel"],
        "messages": {
            "id": event["id"],
            "name": event["name"],
            "data": dumps(event["data"]).decode(),
            "encoding": "json",
        },
    }


async def deliver(
    events: list[dict[str, Any]],
    sink: Sink,
    dead_letter: DeadLetter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    for pending in rounds(events):
        backoff = 0.25
        while pending:
            outcomes = await sink.publish([batch_spec(e) for e in pending])
            retry = []
            for event, outcome in zip(pending, outcomes, strict=True):
                if outcome.logged_only:
                    metrics.count("streams_logged_not_published_total", name=event["name"])
                elif outcome.delivered:
                    metrics.count("streams_published_total", name=event["name"])
                elif outcome.retryable:
                    retry.append((event, outcome.reason))
                else:
                    await dead_letter(event, outcome.reason)
            if retry:
                metrics.count("streams_publish_retries_total", len(retry))
                log.warning(
                    "publish of %d message(s) failed (%s); retrying in %.2fs",
                    len(retry),
                    retry[0][1],
                    backoff,
                )
                await sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            pending = [event for event, _ in retry]


class _FinishBatchFirst(ConsumerRebalanceListener):
    """Partitions are handed over only after the batch in flight is delivered and committed."""

    def __init__(self, in_flight: asyncio.Lock) -> None:
        self.in_flight = in_flight

    async def on_partitions_revoked(self, revoked: object) -> None:
        async with self.in_flight:
            pass

    async def on_partitions_assigned(self, assigned: object) -> None:
        return None


async def publish_forever(
    consumer: AIOKafkaConsumer, sink: Sink, dead_letter: DeadLetter, in_flight: asyncio.Lock
) -> None:
    while True:
        fetched = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
        if not fetched:
            continue
        async with in_flight:
            events = [loads(r.value) for records in fetched.values() for r in records]
            await deliver(events, sink, dead_letter)
            offsets = {tp: records[-1].offset + 1 for tp, records in fetched.items()}
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # partitions moved meanwhile: their new owner re-delivers
                log.warning("publisher commit failed (%r); the batch may be delivered again", exc)


async def supervised(
    run: Callable[[], Awaitable[None]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run `run` again whenever it fails, backing off 1 s, 2 s, ... up to MAX_BACKOFF (back to
    1 s after a run that lasted a minute). A publisher that stopped would leave the app without
    notifications until someone restarted the worker; a restarted one re-delivers its batch in
    flight with the same ids, which Ably drops."""
    backoff = 1.0
    while True:
        started = clock()
        try:
            await run()
            return
        except Exception:  # not CancelledError: a stopping worker stops the publisher
            log.exception("publisher failed; starting it again in %.0fs", backoff)
        if clock() - started > 60:
            backoff = 1.0
        await sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


def publisher(sink: Sink, bootstrap: str) -> Callable[[], Awaitable[None]]:
    """The publisher as a service of the worker: runs until cancelled."""

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )

        async def dead_letter(event: dict[str, Any], reason: str) -> None:
            log.error("dead-lettering %s to %s: %s", event["name"], event["channel"], reason)
            await producer.send_and_wait(
                DLQ.name,
                key=event["channel"].encode(),
                value=dumps(event),
                headers=[("error", reason.encode()), ("source-topic", DERIVED.name.encode())],
            )
            metrics.count("streams_dead_letters_total", family="publisher")

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=1 << 20,
        )
        in_flight = asyncio.Lock()
        consumer.subscribe([DERIVED.name], listener=_FinishBatchFirst(in_flight))
        await consumer.start()
        try:
            await producer.start()
            await publish_forever(consumer, sink, dead_letter, in_flight)
        finally:
            await consumer.stop()
            await producer.stop()

    async def serve() -> None:
        try:
            await supervised(run)
        finally:
            await sink.close()

    return serve
