"""Which worker owns a location: the one assigned its partition of the raw topic.

The raw topic is keyed by location id with Kafka's default partitioner (murmur2), so the owner of
`partition_for(location)` holds every table row of that location. Who owns which partition, and
which tables this worker can read, is the runtime's `Placement`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from aiokafka.partitioner import murmur2
from yarl import URL

from streams.errors import StreamsError
from streams.web import problem

__all__ = [
    "ANSWERED_BY_HEADER",
    "RETRY_AFTER_SECONDS",
    "VERSION_HEADER",
    "OwnerUnreachable",
    "Placement",
    "forward",
    "partition_for",
    "retry_later",
]

VERSION_HEADER = "Streams-Projection-Version"  # which version of a projection answered a query
ANSWERED_BY_HEADER = "Streams-Answered-By"  # "standby": from a copy, the owner did not answer
RETRY_AFTER_SECONDS = 2

# Headers of the owner's answer that the asking worker passes on; Retry-After so that a client
# told to wait by the owner (its partition is being restored) is told so by the relay too.
_RELAYED_HEADERS = (VERSION_HEADER, ANSWERED_BY_HEADER, "Retry-After")


class Placement(Protocol):
    """Where partitions live, as this worker knows it (the runtime implements it)."""

    @property
    def url(self) -> str:
        """This worker's own base URL, e.g. "http://127.0.0.1:6066"."""
        ...

    @property
    def partitions(self) -> int | None:
        """The raw topic's partition count; None before the first assignment."""
        ...

    def owner_url(self, partition: int) -> str | None:
        """The base URL of the worker that owns `partition`; None if unknown."""
        ...

    def tables(self, partition: int) -> Mapping[str, Mapping[Any, Any]] | None:
        """This worker's readable copy of the partition's tables (owned or standby); None when
        it holds none that is ready."""
        ...


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (as aiokafka and the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def retry_later(reason: str) -> web.Response:
    """503 with Retry-After: the answer exists, just not here yet (ownership moves shortly)."""
    unavailable = problem(503, reason)
    unavailable.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return unavailable


class OwnerUnreachable(StreamsError, ConnectionError):
    """The worker a query was forwarded to does not answer (it died, and the group has not
    moved its partitions yet)."""

    def answer(self) -> web.Response:
        return retry_later(f"{self}; its partitions move to another worker shortly: retry")


async def forward(session: aiohttp.ClientSession, url: str, request: web.Request) -> web.Response:
    """Ask the worker at base URL `url` the same query and relay its answer; `OwnerUnreachable`
    when it does not answer within the session's timeout."""
    owner = URL(url)
    target = owner.join(request.rel_url)  # the same path and query string, on the owner
    # Only what the owner needs to answer: the service token, and what the client accepts.
    headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")}
    try:
        async with session.get(target, headers=headers) as response:
            answer = web.Response(
                body=await response.read(),
                status=response.status,
                content_type=response.content_type,
                charset=response.charset,
            )
            for name in _RELAYED_HEADERS:
                if name in response.headers:
                    answer.headers[name] = response.headers[name]
            return answer
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise OwnerUnreachable(
            f"the worker that holds this location ({owner.host}:{owner.port}) does not answer "
            f"({type(exc).__name__})"
        ) from exc
