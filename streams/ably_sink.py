"""Where the publisher sends messages: Ably's batch publish (`POST /messages`), or the log.

A narrow seam: `publish(specs)` takes Ably BatchSpecs and returns one `Outcome` per spec, so the
publisher's batching, ordering and retry logic is tested without the network.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from streams.codec import dumps, loads
from streams.settings import Settings

__all__ = ["AblyRestSink", "LogSink", "Outcome", "Sink", "create_sink"]

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 15.0
ABLY_PROTOCOL_VERSION = "3"  # sent as X-Ably-Version; `outcomes` reads both answer shapes
DEFAULT_HOST = "https://main.realtime.ably.net"
FALLBACK_HOSTS = [f"https://main.{c}.fallback.ably-realtime.com" for c in "abcde"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one BatchSpec: delivered, or failed (retryable or not) with a reason."""

    delivered: bool
    retryable: bool = False
    reason: str = ""
    logged_only: bool = False  # "delivered" to the log: no Ably key, nothing was published


DELIVERED = Outcome(True)
LOGGED = Outcome(True, logged_only=True)


def retryable_status(status: int | None) -> bool:
    # Network trouble, 5xx and 429 are worth retrying; auth errors too: an operator can fix a
    # key, and no message may be dropped meanwhile. Other 4xx will not get better.
    return status is None or status >= 500 or status in (401, 403, 404, 408, 429)


class Sink(Protocol):
    async def publish(self, specs: list[dict[str, Any]]) -> list[Outcome]: ...

    async def close(self) -> None: ...


class LogSink:
    """Without `ABLY_API_KEY`: log what would be published."""

    def __init__(self) -> None:
        log.warning("ABLY_API_KEY is not set: derived events are logged, not published to Ably")

    async def publish(self, specs: list[dict[str, Any]]) -> list[Outcome]:
        for spec in specs:
            log.info(
                "would publish %s to %s (id %s)",
                spec["messages"]["name"],
                spec["channels"],
                spec["messages"]["id"],
            )
        return [LOGGED for _ in specs]

    async def close(self) -> None:
        return None


class AblyRestSink:
    """Ably's batch publish, `POST /messages`, over one kept-alive aiohttp session.

    Basic auth with the key, as Ably advises for trusted servers: no token to mint or renew. An
    `http://` endpoint is a local stand-in (Ably itself refuses Basic auth without TLS). Without
    an endpoint, Ably's cloud and its fallback hosts: after a network error or a 5xx the next
    attempt goes to the next host. ably-python's `request()` did the same work through httpx at
    about ten times the CPU (a quarter of a worker's time at 1,000 events/s, py-spy), so the
    publisher fell seconds behind.
    """

    def __init__(self, key: str, endpoint: str | None) -> None:
        self.hosts = [endpoint.rstrip("/")] if endpoint else [DEFAULT_HOST, *FALLBACK_HOSTS]
        self.host = 0
        self.headers = {
            "Authorization": "Basic " + base64.b64encode(key.encode()).decode(),
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Ably-Version": ABLY_PROTOCOL_VERSION,
        }
        self._session: aiohttp.ClientSession | None = None

    async def publish(self, specs: list[dict[str, Any]]) -> list[Outcome]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            )
        url = f"{self.hosts[self.host]}/messages"
        try:
            async with self._session.post(url, data=dumps(specs), headers=self.headers) as answer:
                status, body = answer.status, await answer.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:  # all retryable
            self._next_host()
            return [Outcome(False, True, repr(exc))] * len(specs)
        if status >= 500:
            self._next_host()
        try:
            parsed = loads(body) if body else []
        except ValueError:
            parsed = {"error": {"message": body[:200].decode(errors="replace")}}
        return outcomes(status, parsed if isinstance(parsed, list) else [parsed], len(specs))

    def _next_host(self) -> None:
        self.host = (self.host + 1) % len(self.hosts)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def outcomes(status: int, items: list[Any], count: int) -> list[Outcome]:
    """Per-spec outcomes from a batch publish answer (both documented response shapes)."""
    if 200 <= status < 300:
        return [DELIVERED] * count
    body = items[0] if len(items) == 1 and isinstance(items[0], dict) else {"items": items}
    per_channel = body.get("batchResponse")
    if per_channel is None and isinstance(body.get("items"), list):
        per_channel = body["items"]
    if isinstance(per_channel, list) and len(per_channel) == count:
        return [_entry_outcome(entry) for entry in per_channel]
    error = body.get("error", {}) if isinstance(body, dict) else {}
    reason = f"{error.get('code', status)}: {error.get('message', 'batch publish failed')}"
    return [Outcome(False, retryable_status(status), reason)] * count


def _entry_outcome(entry: Any) -> Outcome:
    if isinstance(entry, dict) and "error" in entry:
        error = entry["error"] or {}
        status = error.get("statusCode")
        return Outcome(
            False, retryable_status(status), f"{error.get('code')}: {error.get('message')}"
        )
    if isinstance(entry, dict) and entry.get("failureCount"):
        results = entry.get("results") or [{}]
        return _entry_outcome(results[0])
    return DELIVERED


def create_sink(settings: Settings) -> Sink:
    if settings.ably_api_key is None:
        return LogSink()
    return AblyRestSink(settings.ably_api_key.reveal(), settings.ably_endpoint)
