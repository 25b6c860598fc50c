"""Which worker owns a location: the one assigned its partition of the raw topic.

The raw topic is keyed by location id with Kafka's default partitioner (murmur2), so the owner of
`partition_for(location)` holds every table row of that location.
"""

from __future__ import annotations

from typing import Any

from aiokafka.partitioner import murmur2
from faust.types import AppT
from faust.web import Request, Response
from yarl import URL

__all__ = ["VERSION_HEADER", "forward", "owner_url", "partition_for"]

VERSION_HEADER = "Streams-Projection-Version"  # which version of a projection answered a query


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
    """Ask the owning worker and relay its answer."""
    owner = URL(url)
    target = (
        request.url.with_scheme("http")
        .with_host(owner.host or "127.0.0.1")
        .with_port(owner.port or 80)
    )
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")}
    async with app.http_client.get(target, headers=headers) as response:
        answer: Response = web.text(
            await response.text(), content_type=response.content_type, status=response.status
        )
        if VERSION_HEADER in response.headers:
            answer.headers[VERSION_HEADER] = response.headers[VERSION_HEADER]
        return answer
