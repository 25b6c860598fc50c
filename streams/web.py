"""HTTP views served by every worker (Faust's aiohttp web server)."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

__all__ = ["install"]


def install(app: faust.App) -> None:
    """Wire the HTTP views onto `app`."""
    joined = _GroupMembership(app)
    app.page("/healthz")(_healthz_view(joined))


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


def _healthz_view(membership: _GroupMembership) -> type[View]:
    class Healthz(View):
        async def get(self, request: Request) -> Response:
            status = membership.status
            return self.json({"status": status}, status=200 if status == "ok" else 503)

    return Healthz
