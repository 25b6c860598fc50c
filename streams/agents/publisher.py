"""The publisher: derived events from `streams.derived.v1` to Ably.

Batches what the topic offers (one Ably batch publish per round), each message its own BatchSpec
so its id de-duplicates on its own. Per-channel order is kept: a round carries at most one message
per channel, and a round is retried until every retryable failure in it went through before the
next round starts. Retryable failures (network, 5xx, 429) back off and retry without limit: a
message is never skipped. Permanent failures go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from streams import metrics
from streams.ably_sink import Sink
from streams.agents.family import Topics
from streams.codec import dumps, loads
from streams.topics import DERIVED

__all__ = ["deliver", "install_publisher", "rounds"]

log = logging.getLogger(__name__)

BATCH = 500
BATCH_WITHIN = 0.02  # seconds: a little latency for much fewer requests
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
                if outcome.delivered:
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


def install_publisher(app: faust.App, topics: Topics, sink: Sink) -> None:
    async def dead_letter(event: dict[str, Any], reason: str) -> None:
        log.error("dead-lettering %s to %s: %s", event["name"], event["channel"], reason)
        await topics.dead_letters.send(
            key=event["channel"].encode(),
            value=dumps(event),
            headers=[("error", reason.encode()), ("source-topic", DERIVED.name.encode())],
        )
        metrics.count("streams_dead_letters_total", family="publisher")

    async def publisher(stream: faust.StreamT) -> None:
        async for values in stream.take(BATCH, within=BATCH_WITHIN):
            await deliver([loads(value) for value in values], sink, dead_letter)

    app.agent(topics.derived, name="streams.agents.publisher")(publisher)

    async def close_sink(sender: object, /, *args: object, signal: object, **kw: object) -> None:
        await sink.close()

    app.on_before_shutdown.connect(close_sink)
