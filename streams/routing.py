"""Which worker owns a location: the one assigned its partition of the raw topic.

The raw topic is keyed by location id with Kafka's default partitioner (murmur2), so the owner of
`partition_for(location)` holds every table row of that location.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp
from aiokafka.partitioner import murmur2
from faust.types import TP, AppT
from faust.web import Request, Response
from yarl import URL

from streams.web import problem

__all__ = [
    "ANSWERED_BY_HEADER",
    "VERSION_HEADER",
    "OwnerUnreachable",
    "forward",
    "holds_standby",
    "owner_url",
    "partition_for",
]

VERSION_HEADER = "Streams-Projection-Version"  # which version of a projection answered a query
ANSWERED_BY_HEADER = "Streams-Answered-By"  # "standby": from a copy, the owner did not answer
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=10)
RETRY_AFTER_SECONDS = 2


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (as aiokafka and the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def owner_url(app: AppT, topic: str, partition: int) -> str | None:
    """The web URL of the worker that owns `partition` of `topic`, if known."""
    for url, topics in app.router.external_topics_metadata().items():
        if partition in topics.get(topic, ()):
            return str(url)
    return None


class OwnerUnreachable(ConnectionError):
    """The worker a query was forwarded to does not answer (it died, and the group has not
    moved its partitions yet)."""

    def answer(self) -> Response:
        unavailable: Response = problem(
            503, f"{self}; its partitions move to another worker shortly: retry"
        )
        unavailable.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return unavailable


async def forward(app: AppT, web: Any, url: str, request: Request) -> Response:
    """Ask the owning worker and relay its answer; `OwnerUnreachable` when it does not answer."""
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
        raise OwnerUnreachable(
            f"the worker that holds this location ({owner.host}:{owner.port}) does not answer "
            f"({type(exc).__name__})"
        ) from exc


def holds_standby(app: AppT, changelogs: Iterable[str], partition: int) -> bool:
    """Whether this worker keeps a standby copy of `partition` of every one of `changelogs`
    (Faust's `table_standby_replicas`): it can answer for a dead owner until the partition moves."""
    standbys = app.assignor.assigned_standbys()
    return all(TP(topic, partition) in standbys for topic in changelogs)
