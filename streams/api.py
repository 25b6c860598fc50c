"""The query API: `GET /v1/locations/{id}/<kind>` for each kind in `QUERIES`, `GET /metrics`.

A query is answered by the worker that owns the location's partition of the raw topic; any other
worker forwards it there (see `streams.routing`), so every worker can be asked about every location.
When the owner does not answer (it died and the group has not moved its partitions yet), a worker
that keeps a standby copy of the partition answers from it (`Streams-Answered-By: standby`),
otherwise the answer is 503 with `Retry-After`.
Each kind of query reads one projection. When a replayed version of it serves queries (`streams
replay promote`), the live worker hands the query to its local replay worker of that version,
which routes it the same way within its own consumer group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.web import Request, Response, View
from yarl import URL

from streams import metrics, queries
from streams.routing import (
    ANSWERED_BY_HEADER,
    VERSION_HEADER,
    OwnerUnreachable,
    forward,
    holds_standby,
    owner_url,
    partition_for,
)
from streams.settings import Settings
from streams.tables import (
    appointments,
    contacts,
    email_stats,
    leads,
    location_registry,
    pipeline,
    revenue,
    tasks,
    unread,
)
from streams.tables.projection import Tables
from streams.tables.registry import changelog_topic
from streams.topics import RAW_WEBHOOKS
from streams.web import authorized, json_response, problem

__all__ = ["QUERIES", "NotServing", "install_api"]

Answer = Callable[[Tables, str, Request], dict[str, Any]]


class NotServing(LookupError):
    """No version of the projection can answer here yet; the message says why (503)."""


# Where a projection's queries are answered: None for this worker's own tables, else the URL of
# the local replay worker serving them.
Serving = Callable[[str], str | None]


def _revenue(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    state = tables[revenue.DAILY_REVENUE].get(location_id)
    return queries.revenue_answer(location_id, state, first, last)


def _unread(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    return queries.unread_answer(
        location_id,
        tables[unread.UNREAD_BY_LOCATION].get(location_id),
        tables[contacts.CONTACTS].get,
    )


def _leads(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    return queries.leads_answer(location_id, tables[leads.LEADS].get(location_id), first, last)


def _pipeline(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    state = tables[pipeline.PIPELINES].get(location_id)
    return queries.pipeline_answer(location_id, state, first, last)


def _appointments(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    state = tables[appointments.APPOINTMENTS].get(location_id)
    return queries.appointments_answer(location_id, state, datetime.now(UTC))


def _tasks(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    return queries.tasks_answer(location_id, tables[tasks.OPEN_TASKS].get(location_id))


def _email_stats(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    state = tables[email_stats.EMAIL_STATS].get(location_id)
    return queries.email_stats_answer(location_id, state, first, last)


def _registry(tables: Tables, location_id: str, request: Request) -> dict[str, Any]:
    entry = tables[location_registry.LOCATION_REGISTRY].get(location_id)
    return queries.registry_answer(location_id, entry)


# Query kind (the last path segment) -> its answer; each kind is named after its projection.
QUERIES: dict[str, Answer] = {
    "revenue": _revenue,
    "unread": _unread,
    "leads": _leads,
    "pipeline": _pipeline,
    "appointments": _appointments,
    "tasks": _tasks,
    "email_stats": _email_stats,
    "registry": _registry,
}


def install_api(
    app: faust.App,
    settings: Settings,
    tables: Tables,
    kinds: Iterable[str] = QUERIES,
    serving: Serving | None = None,
    version: int = 1,
) -> None:
    for kind in kinds:
        view = _location_view(settings, kind, QUERIES[kind], tables, serving, version)
        app.page(f"/v1/locations/{{location_id}}/{kind}")(view)

    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.text(metrics.render(), content_type="text/plain; version=0.0.4")

    app.page("/metrics")(Metrics)


def _location_view(
    settings: Settings,
    kind: str,
    answer: Answer,
    tables: Tables,
    serving: Serving | None,
    version: int,
) -> type[View]:
    class LocationQuery(View):
        async def get(self, request: Request, location_id: str) -> Response:
            if not authorized(request, settings.api_token):
                return problem(401, "a valid bearer token is required")
            try:
                replay_url = serving(kind) if serving else None
            except NotServing as exc:
                return problem(503, str(exc))
            if replay_url is not None:
                try:
                    return await forward(self.app, self.web, replay_url, request)
                except OwnerUnreachable as exc:
                    return exc.answer()
            partitions = self.app.consumer.topic_partitions(RAW_WEBHOOKS.name)
            partition = partition_for(location_id, partitions or settings.partitions)
            owner = owner_url(self.app, RAW_WEBHOOKS.name, partition)
            if owner is None:
                return problem(503, "partition ownership is not known yet; retry shortly")
            from_standby = False
            if URL(owner) != URL(str(self.app.conf.canonical_url)):
                try:
                    return await forward(self.app, self.web, owner, request)
                except OwnerUnreachable as exc:
                    changelogs = [changelog_topic(self.app.conf.id, name) for name in tables]
                    if not holds_standby(self.app, changelogs, partition):
                        return exc.answer()
                    from_standby = True  # the dead owner's last state, as its changelog has it
            try:
                response = json_response(answer(tables, location_id, request))
            except queries.QueryError as exc:
                return problem(400, str(exc))
            if from_standby:
                response.headers[ANSWERED_BY_HEADER] = "standby"
            response.headers[VERSION_HEADER] = str(version)
            return response

    return LocationQuery
