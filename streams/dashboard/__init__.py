"""`GET /dashboard`: the live dashboard, static files the worker serves.

The page signs in with the app user's JWT, paints from `GET /v1/locations/{id}/dashboard` (the
JWT's location only) and then stays live without polling: a token from `POST
/v1/realtime/token`, redeemed at Ably, opens Ably's SSE stream on the location channel (and, for
admins, `admin:health`). Plain HTML, CSS and JavaScript: no build step, no library.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from streams.settings import Settings
from streams.web import json_response

__all__ = ["ABLY_REALTIME", "install_dashboard"]

STATIC = Path(__file__).parent / "static"
ABLY_REALTIME = "https://main.realtime.ably.net"  # Ably's REST and SSE host when not self-hosted


def install_dashboard(web_app: web.Application, settings: Settings) -> None:
    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def config(request: web.Request) -> web.Response:
        return json_response({"ably": (settings.ably_endpoint or ABLY_REALTIME).rstrip("/")})

    web_app.router.add_get("/dashboard", page)
    web_app.router.add_get("/dashboard/config.json", config)
    web_app.router.add_static("/dashboard/static/", STATIC)
