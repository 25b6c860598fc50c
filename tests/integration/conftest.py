"""Session-scoped real services, started once. `STREAMS_TEST_KAFKA_BOOTSTRAP` points the tests
at an existing Kafka cluster instead of the container."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

# Ryuk (testcontainers' reaper) is an image that cannot be pulled here; `make test` removes
# leftover containers by label instead.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from tests.integration.services import (
    AblyServer,
    start_ably,
    start_ferretdb,
    start_kafka,
)

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
async def kafka_bootstrap() -> AsyncIterator[str]:
    external = os.environ.get("STREAMS_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    service = await start_kafka()
    yield service.address
    service.stop()


@pytest.fixture(scope="session")
async def mongodb_uri() -> AsyncIterator[str]:
    service = await start_ferretdb()
    yield service.address
    service.stop()


@pytest.fixture(scope="session")
async def ably_server() -> AsyncIterator[AblyServer]:
    service = await start_ably()
    yield service
    service.stop()
