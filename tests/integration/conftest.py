"""Session-scoped real services, started once. `STREAMS_TEST_KAFKA_BOOTSTRAP` points the tests
at an existing Kafka cluster instead of the container."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

# Ryuk (testcontainers' reaper) is an image that cannot be pulled here; `make test` removes
# leftover containers by label instead.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from schemas.validate import ably_message_problems
from tests.integration.services import (
    AblyServer,
    start_ably,
    start_ferretdb,
    start_kafka,
)
from tests.integration.webhooks import personal_data

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


# The stand-in keeps every message of the session: each test's messages are checked once, after
# it, read from the stand-in's cursor (reading them all after every test took up to 15 s a test
# by the end of the suite).
_checked_up_to: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _published_messages_are_well_formed(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the Ably stand-in, its new messages: every one on a `user:` or
    `location:` channel (the app's channels) matches the schema of its derived event, and none
    on a location channel carries an e-mail address or a phone number. Runs before the next test
    may clear the stand-in, so every derived event the suite publishes is checked."""
    yield
    if "ably_server" not in request.fixturenames:
        return
    server: AblyServer = request.getfixturevalue("ably_server")
    after = _checked_up_to.get(server.address, 0)
    new, _checked_up_to[server.address] = published_after(server, after)
    wrong = {
        f"{m.get('name')} on {m.get('channel')}": found
        for m in new
        if m.get("channel", "").startswith(("user:", "location:"))
        and (found := ably_message_problems(m))
    }
    assert not wrong, f"published messages that do not match schemas/derived: {wrong}"
    leaked = personal_data(new)
    assert leaked == [], leaked[:3]


def published_after(server: AblyServer, after: int) -> tuple[list[dict[str, Any]], int]:
    """The messages the stand-in accepted after its global number `after`, and the cursor for
    the next call."""
    url = f"http://{server.address}/_standin/messages?after={after}"
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read()), int(response.headers["X-Standin-Last-Event"])
