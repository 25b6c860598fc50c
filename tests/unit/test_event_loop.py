import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uvloop

from streams import event_loop
from streams.ingress import server
from streams.settings import Settings


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_processes_run_on_uvloop() -> None:
    # In a thread of its own: the test session's thread has pytest-asyncio's loop.
    with ThreadPoolExecutor(1) as pool:
        loop = pool.submit(event_loop.run, _running_loop()).result()
    assert isinstance(loop, uvloop.Loop)
    assert loop.is_closed()  # run closes it, as asyncio.run does


def test_the_ingress_serves_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(server.web, "run_app", lambda app, **options: served.update(options))
    server.run_ingress(Settings.from_env({}), "127.0.0.1:9", 0)
    loop = served["loop"]
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
