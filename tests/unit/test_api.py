"""The query API's routing (`streams.api`): who answers a query, given where the partitions live.
No Kafka: a fake `Placement` says who owns what, and a second server plays the owner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.api import QUERIES, NotServing, install_api
from streams.processes import free_port
from streams.queries import KINDS
from streams.routing import ANSWERED_BY_HEADER, RETRY_AFTER_SECONDS, VERSION_HEADER
from streams.settings import Settings
from streams.tables import revenue

SETTINGS = Settings.from_env({"STREAMS_API_TOKEN": "service-token"})
AUTH = {"Authorization": "Bearer service-token"}
ME = "http://127.0.0.1:6066"
NOBODY = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
REVENUE = "/v1/locations/L1/revenue?from=2026-03-01&to=2026-03-31"


def revenue_tables(cents: int) -> dict[str, Mapping[Any, Any]]:
    state = {"timezone": None, "days": {"2026-03-01": {"USD": cents}}}
    return {revenue.DAILY_REVENUE: {"L1": state}}


@dataclass
class FakePlacement:
    url: str = ME
    partitions: int | None = 4
    owner: str | None = ME
    copy: Mapping[str, Mapping[Any, Any]] | None = field(
        default_factory=lambda: revenue_tables(1050)
    )

    def owner_url(self, partition: int) -> str | None:
        return self.owner

    def tables(self, partition: int) -> Mapping[str, Mapping[Any, Any]] | None:
        return self.copy


def api_app(placement: FakePlacement, version: int = 1, **kwargs: Any) -> web.Application:
    web_app = web.Application()
    install_api(web_app, SETTINGS, placement, version=version, **kwargs)
    return web_app


@pytest.fixture
async def owner() -> AsyncIterator[TestServer]:
    """Another worker, which owns every partition and answers from its own tables."""
    placement = FakePlacement(copy=revenue_tables(9900))
    server = TestServer(api_app(placement, version=3))
    async with server:
        placement.url = placement.owner = str(server.make_url(""))
        yield server


async def ask(placement: FakePlacement, path: str = REVENUE, **kwargs: Any) -> tuple[int, Any, Any]:
    headers = kwargs.pop("headers", AUTH)
    async with TestClient(TestServer(api_app(placement, **kwargs))) as client:
        response = await client.get(path, headers=headers)
        return response.status, response.headers, await response.json()


def usd(body: Any) -> str:
    return str(body["totals"]["USD"])


async def test_the_owner_answers_from_its_tables_with_the_projection_version() -> None:
    status, headers, body = await ask(FakePlacement(), version=2)
    assert status == 200
    assert headers[VERSION_HEADER] == "2"
    assert ANSWERED_BY_HEADER not in headers
    assert usd(body) == "10.50"


async def test_unknown_ownership_is_a_503_to_retry() -> None:
    status, headers, body = await ask(FakePlacement(owner=None, partitions=None))
    assert status == 503
    assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "not known yet" in body["error"]


async def test_an_owner_still_restoring_its_partition_is_a_503_to_retry() -> None:
    status, headers, body = await ask(FakePlacement(copy=None))
    assert status == 503
    assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "being restored" in body["error"]


async def test_an_unreachable_owner_without_a_copy_here_is_a_503_to_retry() -> None:
    status, headers, body = await ask(FakePlacement(owner=NOBODY, copy=None))
    assert status == 503
    assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "does not answer" in body["error"]


async def test_an_unreachable_owner_is_stood_in_for_by_a_standby_copy() -> None:
    status, headers, body = await ask(FakePlacement(owner=NOBODY), version=2)
    assert status == 200
    assert headers[ANSWERED_BY_HEADER] == "standby"
    assert headers[VERSION_HEADER] == "2"
    assert usd(body) == "10.50"


async def test_a_reachable_owner_answers_and_its_answer_is_relayed(owner: TestServer) -> None:
    placement = FakePlacement(owner=str(owner.make_url("")))
    status, headers, body = await ask(placement, version=1)
    assert status == 200
    assert headers[VERSION_HEADER] == "3"  # the owner's, not this worker's
    assert ANSWERED_BY_HEADER not in headers
    assert usd(body) == "99.00"  # the owner's tables, not the copy here
    assert body["from"] == "2026-03-01"  # the query string went along


async def test_the_owners_refusals_are_relayed(owner: TestServer) -> None:
    placement = FakePlacement(owner=str(owner.make_url("")))
    status, _, body = await ask(placement, "/v1/locations/L1/revenue?from=2026-13-01")
    assert status == 400
    assert "from must be a date" in body["error"]


async def test_an_owner_restoring_its_partition_is_relayed_with_its_retry_after() -> None:
    placement = FakePlacement(copy=None)
    async with TestServer(api_app(placement)) as restoring:
        placement.url = placement.owner = str(restoring.make_url(""))
        status, headers, body = await ask(FakePlacement(owner=placement.owner, copy=None))
    assert status == 503
    assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "being restored" in body["error"]


async def test_a_query_without_the_token_is_refused() -> None:
    status, _, body = await ask(FakePlacement(), headers={})
    assert status == 401
    assert "bearer token" in body["error"]


async def test_a_bad_date_range_is_a_400_with_the_reason() -> None:
    status, _, body = await ask(
        FakePlacement(), "/v1/locations/L1/revenue?from=2026-03-31&to=2026-03-01"
    )
    assert status == 400
    assert "after" in body["error"]


async def test_a_projection_no_version_serves_is_a_503_with_the_reason() -> None:
    def serving(kind: str) -> str | None:
        raise NotServing(f"no version of {kind} serves queries yet")

    status, _, body = await ask(FakePlacement(), serving=serving)
    assert status == 503
    assert body["error"] == "no version of revenue serves queries yet"


async def test_a_projection_served_by_a_replay_worker_is_answered_there(owner: TestServer) -> None:
    replay_url = str(owner.make_url(""))
    status, headers, body = await ask(FakePlacement(owner=None), serving=lambda kind: replay_url)
    assert status == 200
    assert headers[VERSION_HEADER] == "3"
    assert usd(body) == "99.00"


async def test_metrics_are_served_in_prometheus_text_format() -> None:
    async with TestClient(TestServer(api_app(FakePlacement()))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_every_query_kind_has_an_answer_and_no_answer_is_unlisted() -> None:
    assert tuple(QUERIES) == KINDS
