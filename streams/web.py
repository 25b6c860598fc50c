"""HTTP pieces every view shares, and the health view.

Views are plain `faust.web.View` classes built by small factories and wired explicitly by
`install_*` functions called from the composition root (`streams.app`).
"""

from __future__ import annotations

import hmac
from typing import Any

import faust
from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View

from streams.codec import dumps
from streams.settings import Secret

__all__ = ["authorized", "install_health", "json_response", "problem"]


def json_response(value: Any, status: int = 200) -> Response:
    """A JSON answer encoded with the project's codec."""
    # Faust's aiohttp driver serves aiohttp responses; Faust only types them abstractly.
    return aiohttp_web.Response(  # type: ignore[return-value]
        body=dumps(value), status=status, content_type="application/json"
    )


def problem(status: int, reason: str) -> Response:
    """A JSON error answer that says why: `{"error": reason}`."""
    return json_response({"error": reason}, status)


def authorized(request: Request | aiohttp_web.Request, token: Secret | None) -> bool:
    """Whether the request carries the service bearer token (always true when none is set:
    the server then listens on loopback only)."""
    if token is None:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.reveal().encode()
    )


def install_health(app: faust.App) -> None:
    membership = _GroupMembership(app)

    class Healthz(View):
        async def get(self, request: Request) -> Response:
            status = membership.status
            return self.json({"status": status}, status=200 if status == "ok" else 503)

    app.page("/healthz")(Healthz)


class _GroupMembership:
    """Whether this worker has joined its consumer group and recovered its tables."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.joined = False
        app.on_rebalance_complete.connect(self._on_rebalance_complete)

    async def _on_rebalance_complete(
        self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any
    ) -> None:
        self.joined = True

    @property
    def status(self) -> str:
        if not self.joined:
            return "starting"
        return "rebalancing" if self.app.rebalancing else "ok"
