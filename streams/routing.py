"""Which worker owns a location: the one assigned its partition of the raw topic.

The raw topic is keyed by location id with Kafka's default partitioner (murmur2), so the owner of
`partition_for(location)` holds every table row of that location.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiokafka.partitioner import murmur2
from faust.types import AppT
from faust.web import Request, Response
from yarl import URL

from streams.web import problem

__all__ = ["VERSION_HEADER", "forward", "owner_url", "partition_for"]

VERSION_HEADER = "Streams-Projection-Version"  # which version of a projection answered a query
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=10)
RETRY_AFTER_SECONDS = 2


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (as aiokafka and the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owner_url(app: AppT, topic: str, key: str, default_partitions: int) -> str | None:
    """The web URL of the worker that owns `key`'s partition of `topic`, if known."""
    partitions = app.consumer.topic_partitions(topic) or default_partitions
    partition = partition_for(key, partitions)
    for url, topics in app.router.external_topics_metadata().items():
        if partition in topics.get(topic, ()):
            return str(url)
    return None


async def forward(app: AppT, web: Any, url: str, request: Request) -> Response:
    """Ask the owning worker and relay its answer; 503 with `Retry-After` when it cannot be
    reached (it died: its partitions move to another worker once the group notices)."""
    owner = URL(url)
    target = (
        request.url.with_scheme("http")
        .with_host(owner.host or "127.0.0.1")
        .with_port(owner.port or 80)
    )
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")}
    try:
        async with app.http_client.get(
            target, headers=headers, timeout=FORWARD_TIMEOUT
        ) as response:
            answer: Response = web.text(
                await response.text(), content_type=response.content_type, status=response.status
            )
            if VERSION_HEADER in response.headers:
                answer.headers[VERSION_HEADER] = response.headers[VERSION_HEADER]
            return answer
    except (TimeoutError, aiohttp.ClientError) as exc:
        unavailable: Response = problem(
            503,
            f"the worker that holds this location ({owner.host}:{owner.port}) does not answer "
            f"({type(exc).__name__}); its partitions move to another worker shortly: retry",
        )
        unavailable.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return unavailable
