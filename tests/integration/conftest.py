"""Session-scoped real services, started once. `STREAMS_TEST_KAFKA_BOOTSTRAP` points the tests
at an existing Kafka cluster instead of the container."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

# Ryuk (testcontainers' reaper) is an image that cannot be pulled here; `make test` removes
# leftover containers by label instead.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from schemas.validate import ably_message_problems
from tests.integration.processes import http
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


@pytest.fixture(autouse=True)
def _published_events_match_their_schemas(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the Ably stand-in: every message on a `user:` or `location:`
    channel (the app's channels) matches the schema of its derived event. Runs before the next
    test may clear the stand-in, so every derived event the suite publishes is checked."""
    yield
    if "ably_server" not in request.fixturenames:
        return
    server: AblyServer = request.getfixturevalue("ably_server")
    status, messages = http("GET", f"http://{server.address}/_standin/messages")
    assert status == 200, messages
    wrong = {
        f"{m.get('name')} on {m.get('channel')}": found
        for m in messages
        if m.get("channel", "").startswith(("user:", "location:"))
        and (found := ably_message_problems(m))
    }
    assert not wrong, f"published messages that do not match schemas/derived: {wrong}"


@pytest.fixture(autouse=True)
def no_personal_data_on_location_channels(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the Ably-compatible server: no message on any location channel
    carries an e-mail address or a phone number (every derived event of the suite is checked)."""
    yield
    if "ably_server" in request.fixturenames:
        from tests.integration.webhooks import ably_messages, personal_data

        server = request.getfixturevalue("ably_server")
        leaked = personal_data(ably_messages(server))
        assert leaked == [], leaked[:3]
