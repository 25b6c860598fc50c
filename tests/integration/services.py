"""Real services for the integration tests, in containers built by `make images`.

Each `start_*` runs one locally built image through testcontainers, waits until the service
answers, and returns its address. A service that cannot start raises with the reason and the
container's log: integration tests never skip.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymongo import AsyncMongoClient
from testcontainers.core.container import DockerContainer

from streams.broker import brokers_answering
from streams.settings import REPO_ROOT

__all__ = [
    "ABLY_KEY",
    "AblyServer",
    "Service",
    "ServiceError",
    "start_ably",
    "start_ferretdb",
    "start_kafka",
]

KAFKA_VERSION = re.search(
    r"<kafka.version>(.+?)</kafka.version>", (REPO_ROOT / "infra/kafka/pom.xml").read_text()
).group(1)  # type: ignore[union-attr]
KAFKA_IMAGE = f"streams-kafka:{KAFKA_VERSION}"
FERRETDB_IMAGE = "streams-ferretdb:1.24.2"
ABLY_IMAGE = "streams-ably-standin:1"
ABLY_KEY = "testapp.testkey:not-a-real-secret"
# `make images` removes containers carrying this label whose test process is gone (a killed run),
# and leaves alone those of a run still going in another checkout.
LABEL = {"streams.test": "1", "streams.test.pid": str(os.getpid())}
TEST_PARTITIONS = 3  # every test that creates the project's topics on the shared broker uses it


class ServiceError(RuntimeError):
    pass


@dataclass
class Service:
    address: str
    container: DockerContainer

    def stop(self) -> None:
        self.container.stop()


@dataclass
class AblyServer(Service):
    key: str = ABLY_KEY

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


async def start_kafka(timeout: float = 120) -> Service:
    # The broker advertises the port it listens on, so the host port must equal the container's.
    port = _free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(port, port)
        .with_env("KAFKA_PORT", str(port))
        .with_kwargs(labels=LABEL)
    )
    bootstrap = f"127.0.0.1:{port}"

    async def ready() -> bool:
        return await brokers_answering(bootstrap) >= 1

    return Service(bootstrap, await _start(container, ready, timeout))


async def start_ferretdb(timeout: float = 60) -> Service:
    container = DockerContainer(FERRETDB_IMAGE).with_exposed_ports(27017).with_kwargs(labels=LABEL)

    async def ready() -> bool:
        uri = f"mongodb://127.0.0.1:{container.get_exposed_port(27017)}/"
        client: AsyncMongoClient = AsyncMongoClient(uri, serverSelectionTimeoutMS=1000)
        try:
            await client.admin.command("ping")
            return True
        except Exception:
            return False
        finally:
            await client.close()

    await _start(container, ready, timeout)
    return Service(f"mongodb://127.0.0.1:{container.get_exposed_port(27017)}/", container)


async def start_ably(timeout: float = 30) -> AblyServer:
    container = (
        DockerContainer(ABLY_IMAGE)
        .with_exposed_ports(8080)
        .with_env("ABLY_STANDIN_API_KEY", ABLY_KEY)
        .with_kwargs(labels=LABEL)
    )

    async def ready() -> bool:
        url = f"http://127.0.0.1:{container.get_exposed_port(8080)}/healthz"
        try:
            return await asyncio.to_thread(_http_ok, url)
        except Exception:
            return False

    await _start(container, ready, timeout)
    return AblyServer(f"127.0.0.1:{container.get_exposed_port(8080)}", container)


async def _start(
    container: DockerContainer, ready: Callable[[], Awaitable[bool]], timeout: float
) -> DockerContainer:
    image = container.image
    try:
        container.start()
    except Exception as exc:
        raise ServiceError(
            f"could not start a container from {image} ({exc}); `make images` builds it"
        ) from exc
    deadline = time.monotonic() + timeout
    while not await ready():
        container.get_wrapped_container().reload()
        if container.get_wrapped_container().status == "exited" or time.monotonic() > deadline:
            logs = b"".join(container.get_logs()).decode(errors="replace")[-4000:]
            container.stop()
            raise ServiceError(f"{image} did not become ready within {timeout:.0f}s:\n{logs}")
        await asyncio.sleep(0.5)
    return container


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
