"""Where the publisher sends messages: Ably's batch publish (`POST /messages`), or the log.

A narrow seam: `publish(specs)` takes Ably BatchSpecs and returns one `Outcome` per spec, so the
publisher's batching, ordering and retry logic is tested without the network.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from streams.settings import Settings

__all__ = ["AblyRestSink", "LogSink", "Outcome", "Sink", "create_sink"]

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 15.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one BatchSpec: delivered, or failed (retryable or not) with a reason."""

    delivered: bool
    retryable: bool = False
    reason: str = ""


DELIVERED = Outcome(True)


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
        return [DELIVERED for _ in specs]

    async def close(self) -> None:
        return None


class AblyRestSink:
    def __init__(self, key: str, endpoint: str | None) -> None:
        from ably import AblyRest

        options: dict[str, Any] = {"use_binary_protocol": False}
        if endpoint:
            url = urlsplit(endpoint)
            options["endpoint"] = url.hostname
            if url.scheme == "http":
                # Ably allows no Basic auth over plain HTTP: the client exchanges its key for a token.
                options.update(tls=False, port=url.port or 80, use_token_auth=True)
            else:
                options.update(tls=True, tls_port=url.port or 443)
        self.client = AblyRest(key=key, **options)

    async def publish(self, specs: list[dict[str, Any]]) -> list[Outcome]:
        from ably.util.exceptions import AblyException

        try:
            response = await asyncio.wait_for(
                self.client.request("POST", "/messages", "3", body=specs), REQUEST_TIMEOUT
            )
        except AblyException as exc:
            failed = Outcome(False, retryable_status(exc.status_code), f"{exc.code}: {exc.message}")
            return [failed for _ in specs]
        except Exception as exc:  # network errors, timeouts: all retryable
            return [Outcome(False, True, repr(exc)) for _ in specs]
        return outcomes(response.status_code, response.items, len(specs))

    async def close(self) -> None:
        await self.client.close()


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
