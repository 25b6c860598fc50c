"""HTTP pieces every handler shares, and the health and metrics endpoints.

Handlers are plain aiohttp handlers built by small factories and added to the worker's
`aiohttp.web.Application` by `install_*` functions called from the composition root (`streams.app`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from aiohttp import web

from streams import metrics
from streams.codec import dumps
from streams.settings import Secret

__all__ = ["authorized", "install_health", "install_metrics", "json_response", "problem"]


def json_response(value: Any, status: int = 200) -> web.Response:
    """A JSON answer encoded with the project's codec."""
    return web.Response(body=dumps(value), status=status, content_type="application/json")


def problem(status: int, reason: str) -> web.Response:
    """A JSON error answer that says why: `{"error": reason}`."""
    return json_response({"error": reason}, status)


def authorized(request: web.Request, token: Secret | None) -> bool:
    """Whether the request carries the service bearer token (always true when none is set:
    the server then listens on loopback only)."""
    if token is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.reveal().encode()
    )


def install_health(web_app: web.Application, status: Callable[[], str]) -> None:
    """`GET /healthz`: `{"status": status()}`, 200 when it is "ok", else 503 (e.g. "starting"
    until the worker has joined its group and recovered its tables)."""

    async def healthz(request: web.Request) -> web.Response:
        current = status()
        return json_response({"status": current}, 200 if current == "ok" else 503)

    web_app.router.add_get("/healthz", healthz)


def install_metrics(web_app: web.Application) -> None:
    """`GET /metrics`: this process's counters in Prometheus' text format."""

    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain; version=0.0.4")

    web_app.router.add_get("/metrics", serve_metrics)
