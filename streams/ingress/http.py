"""`POST /webhooks/ghl` (HighLevel, signed) and `POST /v1/events` (first-party, bearer token).

A webhook is answered 200 only after Kafka acknowledged its record; 503 when Kafka could not take
it (HighLevel retries), 401 for a bad signature, 400 when the body is not a JSON object, 413 when it
is over the size limit. Nothing is written unless the answer is 200.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cache

from aiohttp import web

from schemas.catalog import webhook_schemas
from streams import metrics
from streams.codec import loads_object
from streams.events import BadRecord, Event
from streams.ingress.raw_log import KafkaUnavailable, RawLog
from streams.ingress.signatures import SignatureError, Verifier
from streams.settings import Settings
from streams.tables import locations
from streams.topics import HEADERS_ROOM, RECORD_MAX_BYTES
from streams.web import authorized, json_response, problem

__all__ = ["Handler", "ingress_handlers", "install_ingress"]

log = logging.getLogger(__name__)


Handler = Callable[[web.Request], Awaitable[web.Response]]


def ingress_handlers(settings: Settings, raw_log: RawLog) -> dict[str, Handler]:
    """The ingress endpoints by path, as plain aiohttp handlers: the worker serves them beside
    its other endpoints (`install_ingress`), `streams ingress` on its own (`streams.ingress.server`)."""
    verifier = Verifier.from_pem(settings.ghl_ed25519_public_key, settings.ghl_rsa_public_key)
    limit = settings.webhook_max_bytes
    if limit > RECORD_MAX_BYTES - HEADERS_ROOM:
        # Kafka would refuse such a body: the ingress would answer 503 and HighLevel retry forever.
        raise ValueError(
            f"STREAMS_WEBHOOK_MAX_BYTES is {limit}; the raw log takes bodies of at most "
            f"{RECORD_MAX_BYTES - HEADERS_ROOM} bytes"
        )

    async def webhook(request: web.Request) -> web.Response:
        body = await _read_limited(request, limit)
        if body is None:
            return problem(413, f"body is larger than {limit} bytes")
        try:
            scheme = verifier.verify(body, request.headers)
        except SignatureError as exc:
            return problem(401, str(exc))
        return await _append(raw_log, body, source="live", signature=scheme)

    async def first_party_event(request: web.Request) -> web.Response:
        if not authorized(request, settings.api_token):
            return problem(401, "a valid bearer token is required")
        body = await _read_limited(request, limit)
        if body is None:
            return problem(413, f"body is larger than {limit} bytes")
        return await _append(raw_log, body, source="live", signature="trusted", first_party=True)

    handlers = {"/webhooks/ghl": webhook, "/v1/events": first_party_event}
    return {path: _counting_refusals(path, handle) for path, handle in handlers.items()}


def _counting_refusals(path: str, handle: Handler) -> Handler:
    async def counted(request: web.Request) -> web.Response:
        response = await handle(request)
        if response.status != 200:
            metrics.count(
                "streams_ingress_refused_total", endpoint=path, status=str(response.status)
            )
        return response

    return counted


def install_ingress(web_app: web.Application, settings: Settings, raw_log: RawLog) -> None:
    for path, handle in ingress_handlers(settings, raw_log).items():
        web_app.router.add_post(path, handle)


async def _append(
    raw_log: RawLog, body: bytes, *, source: str, signature: str, first_party: bool = False
) -> web.Response:
    try:
        payload = loads_object(body)
    except ValueError as exc:
        return problem(400, str(exc))
    if first_party:
        reason = _first_party_problem(payload)
        if reason:
            return problem(400, reason)
    try:
        written = await raw_log.append(body, payload, source=source, signature=signature)
    except KafkaUnavailable as exc:
        log.warning("webhook not written, answering 503: %s", exc)
        return problem(503, "the event log is unavailable; retry later")
    return json_response(
        {"status": "accepted", "partition": written.partition, "offset": written.offset}
    )


@cache
def _highlevel_types() -> frozenset[str]:
    return frozenset(webhook_schemas())


def _first_party_problem(payload: dict[str, object]) -> str | None:
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind:
        return "a first-party event needs a string `type`"
    if kind in _highlevel_types():
        # Taken here, a HighLevel type would skip the signature check: anyone who can reach
        # this endpoint could forge one. Locally, `streams dev-key` and `streams send` sign.
        return (
            f"{kind} is a HighLevel webhook: POST it signed to /webhooks/ghl; this endpoint "
            "takes the project's own events (LocationSettingsUpdated, Quote*, new types)"
        )
    if kind == locations.SETTINGS_TYPE:
        # The projections' own check, so what the log takes here they can fold.
        try:
            locations.timezone_from(
                Event(kind, payload, webhook_id="", received_at=0, source="live")
            )
        except BadRecord as exc:
            return str(exc)
    return None


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it is over `limit` bytes (nothing more is read)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
