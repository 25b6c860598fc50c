"""Row 5, ingress: webhooks/s through `POST /webhooks/ghl` (Ed25519 signature verified, record
acknowledged by Kafka before the 200) against a bare aiohttp handler that answers 200, both on
this machine, driven by the same closed-loop client (64 concurrent requests). Row 5 posts to
`streams ingress`, row 5b to a worker, which also folds what it takes."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import bodies, worker_env
from streams import event_loop
from streams.codec import dumps
from streams.settings import REPO_ROOT
from tests.integration.processes import free_port, http, start_worker, wait_for

__all__ = ["SigningKey", "bare_rate", "ingress_rate", "load"]

CONCURRENCY = 64


class SigningKey:
    """A fresh Ed25519 key: the worker is given its public half as HighLevel's."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public_pem = (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def signed(self, body: bytes) -> tuple[bytes, dict[str, str]]:
        signature = base64.b64encode(self.private.sign(body)).decode()
        return body, {"Content-Type": "application/json", "X-GHL-Signature": signature}


async def load(url: str, requests: list[tuple[bytes, dict[str, str]]], seconds: float) -> float:
    """Closed loop: CONCURRENCY clients post the requests round-robin; 200s per second."""
    ok = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def client(offset: int) -> None:
            nonlocal ok
            index = offset
            while time.perf_counter() < deadline:
                body, headers = requests[index % len(requests)]
                index += CONCURRENCY
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        raise AssertionError(f"{url} answered {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(CONCURRENCY)))
        return ok / (time.perf_counter() - started)


def ingress_rate(bootstrap: str, workdir: Path, seconds: float, command: str = "ingress") -> float:
    """`command` "ingress": the `streams ingress` process (row 5); "worker": the worker's own
    ingress, which shares its process with folding everything it takes (row 5b)."""
    key = SigningKey()
    requests = [key.signed(dumps(b)) for b in bodies(20_000, seed=23)]
    server = start_worker(
        worker_env(bootstrap, GHL_WEBHOOK_ED25519_PUBLIC_KEY=key.public_pem), workdir, command
    )
    try:
        server.wait_healthy()
        return asyncio.run(load(f"{server.url}/webhooks/ghl", requests, seconds))
    finally:
        server.stop()


def bare_rate(seconds: float) -> float:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.ingress", str(port)], cwd=REPO_ROOT)
    try:
        wait_for(lambda: http("GET", f"http://127.0.0.1:{port}/")[0] == 200, timeout=30)
        requests = [(dumps(b), {"Content-Type": "application/json"}) for b in bodies(2000, seed=23)]
        return asyncio.run(load(f"http://127.0.0.1:{port}/webhooks/ghl", requests, seconds))
    finally:
        server.terminate()
        server.wait(10)


def _bare_server(port: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    app.router.add_post("/webhooks/ghl", ok)
    # On the ingress's own event loop: the peer differs from it by the work only.
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        print=None,
        access_log=None,
        loop=event_loop.new_event_loop(),
    )


if __name__ == "__main__":
    _bare_server(int(sys.argv[1]))
