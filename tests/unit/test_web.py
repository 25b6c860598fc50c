from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.web import install_health


@pytest.mark.parametrize(("status", "code"), [("ok", 200), ("starting", 503), ("rebalancing", 503)])
async def test_health_is_200_only_when_the_worker_says_ok(status: str, code: int) -> None:
    web_app = web.Application()
    install_health(web_app, lambda: status)
    async with TestClient(TestServer(web_app)) as client:
        response = await client.get("/healthz")
        assert response.status == code
        assert await response.json() == {"status": status}
