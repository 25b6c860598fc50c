"""The query API: `GET /v1/locations/{id}/<kind>` for each kind in `QUERIES`, `GET /metrics`.

A query is answered by the worker that owns the location's partition of the raw topic; any other
worker forwards it there (see `streams.routing`), so every worker can be asked about every location.
Who owns which partition, and which tables this worker can read, is the runtime's `Placement`.
When the owner does not answer (it died and the group has not moved its partitions yet), a worker
that keeps a standby copy of the partition answers from it (`Streams-Answered-By: standby`),
otherwise the answer is 503 with `Retry-After`.
Each kind of query reads one projection. When a replayed version of it serves queries (`streams
replay promote`), the live worker hands the query to its local replay worker of that version,
which routes it the same way within its own consumer group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from yarl import URL

from streams import queries
from streams.errors import StreamsError
from streams.realtime_token import user_claims
from streams.routing import (
    ANSWERED_BY_HEADER,
    VERSION_HEADER,
    OwnerUnreachable,
    Placement,
    forward,
    partition_for,
    retry_later,
)
from streams.settings import Settings
from streams.tables import (
    activity,
    appointments,
    contacts,
    email_stats,
    leads,
    location_registry,
    pipeline,
    quotes,
    revenue,
    tasks,
    unread,
)
from streams.web import authorized, install_metrics, json_response, problem

__all__ = ["QUERIES", "NotServing", "install_api"]

# Table name -> a readable copy of the table (the answers only read).
ReadTables = Mapping[str, Mapping[Any, Any]]
Answer = Callable[[ReadTables, str, web.Request], dict[str, Any]]

# Every query a worker forwards shares one connection pool; 10 s is long enough for a busy owner,
# short enough that a client retries (on the 503) before its own timeout.
FORWARD_TIMEOUT = aiohttp.ClientTimeout(total=10)
_SESSION = web.AppKey("streams.api.forwarding_session", aiohttp.ClientSession)


class NotServing(StreamsError, LookupError):
    """No version of the projection can answer here yet; the message says why (503)."""


# Where a projection's queries are answered: None for this worker's own tables, else the URL of
# the local replay worker serving them.
Serving = Callable[[str], str | None]


def _revenue(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    state = tables[revenue.DAILY_REVENUE].get(location_id)
    return queries.revenue_answer(location_id, state, first, last)


def _unread(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    return queries.unread_answer(
        location_id,
        tables[unread.UNREAD_BY_LOCATION].get(location_id),
        tables[contacts.CONTACTS].get,
    )


def _leads(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    return queries.leads_answer(location_id, tables[leads.LEADS].get(location_id), first, last)


def _pipeline(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    state = tables[pipeline.PIPELINES].get(location_id)
    return queries.pipeline_answer(location_id, state, first, last)


def _appointments(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    state = tables[appointments.APPOINTMENTS].get(location_id)
    return queries.appointments_answer(location_id, state, datetime.now(UTC))


def _tasks(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    return queries.tasks_answer(location_id, tables[tasks.OPEN_TASKS].get(location_id))


def _email_stats(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
    state = tables[email_stats.EMAIL_STATS].get(location_id)
    return queries.email_stats_answer(location_id, state, first, last)


def _quotes(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    return queries.quotes_answer(location_id, tables[quotes.QUOTES].get(location_id))


def _registry(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    entry = tables[location_registry.LOCATION_REGISTRY].get(location_id)
    return queries.registry_answer(location_id, entry)


def _activity(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    contact_id = request.query.get("contact") or None
    if contact_id is None:
        entries = tables[activity.ACTIVITY_BY_LOCATION].get(location_id)
    else:
        entries = tables[activity.ACTIVITY_BY_CONTACT].get(f"{location_id}/{contact_id}")
    return queries.activity_answer(location_id, contact_id, entries)


# Each query kind (`queries.KINDS`, the last path segment) -> its answer.
QUERIES: dict[str, Answer] = {
    "revenue": _revenue,
    "unread": _unread,
    "leads": _leads,
    "pipeline": _pipeline,
    "appointments": _appointments,
    "tasks": _tasks,
    "email_stats": _email_stats,
    "quotes": _quotes,
    "registry": _registry,
    "activity": _activity,
}


def _dashboard(tables: ReadTables, location_id: str, request: web.Request) -> dict[str, Any]:
    return queries.dashboard_answer(
        location_id,
        revenue=tables[revenue.DAILY_REVENUE].get(location_id),
        leads=tables[leads.LEADS].get(location_id),
        pipeline=tables[pipeline.PIPELINES].get(location_id),
        unread=tables[unread.UNREAD_BY_LOCATION].get(location_id),
        appointments=tables[appointments.APPOINTMENTS].get(location_id),
        tasks=tables[tasks.OPEN_TASKS].get(location_id),
        activity=tables[activity.ACTIVITY_BY_LOCATION].get(location_id),
        now=datetime.now(UTC),
    )


Allowed = Callable[[web.Request, str], bool]


def install_api(
    web_app: web.Application,
    settings: Settings,
    placement: Placement,
    kinds: Iterable[str] = QUERIES,
    serving: Serving | None = None,
    version: int = 1,
) -> None:
    web_app.cleanup_ctx.append(_forwarding_session)

    def service(request: web.Request, location_id: str) -> bool:
        return authorized(request, settings.api_token)

    for kind in kinds:
        handler = _location_query(
            settings, placement, service, QUERIES[kind], partial(_served, serving, kind), version
        )
        web_app.router.add_get(f"/v1/locations/{{location_id}}/{kind}", handler)
    if serving is not None:  # the live worker: its dashboard reads the live tables
        user = partial(_service_or_location_user, settings)
        handler = _location_query(settings, placement, user, _dashboard, lambda: None, version)
        web_app.router.add_get("/v1/locations/{location_id}/dashboard", handler)
    install_metrics(web_app)


def _served(serving: Serving | None, kind: str) -> str | None:
    return serving(kind) if serving else None


def _service_or_location_user(settings: Settings, request: web.Request, location_id: str) -> bool:
    """The service token, or an app user's JWT for this very location."""
    if settings.api_token is not None and authorized(request, settings.api_token):
        return True
    if settings.app_jwt_secret is None:
        return settings.api_token is None
    try:
        claims = user_claims(request.headers.get("Authorization", ""), settings.app_jwt_secret)
    except jwt.InvalidTokenError:
        return False
    return claims.location_id == location_id


async def _forwarding_session(web_app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=FORWARD_TIMEOUT) as session:
        web_app[_SESSION] = session
        yield


def _location_query(
    settings: Settings,
    placement: Placement,
    allowed: Allowed,
    answer: Answer,
    served_by: Callable[[], str | None],
    version: int,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def query(request: web.Request) -> web.Response:
        location_id = request.match_info["location_id"]
        if not allowed(request, location_id):
            return problem(401, "a valid bearer token is required")
        session = request.app[_SESSION]
        try:
            replay_url = served_by()
        except NotServing as exc:
            return problem(503, str(exc))
        if replay_url is not None:
            try:
                return await forward(session, replay_url, request)
            except OwnerUnreachable as exc:
                return exc.answer()
        partition = partition_for(location_id, placement.partitions or settings.partitions)
        owner = placement.owner_url(partition)
        if owner is None:
            return retry_later("partition ownership is not known yet; retry shortly")
        from_standby = False
        if URL(owner) != URL(placement.url):
            try:
                return await forward(session, owner, request)
            except OwnerUnreachable as exc:
                tables = placement.tables(partition)
                if tables is None:
                    return exc.answer()
                from_standby = True  # the dead owner's last state, as its changelog has it
        else:
            tables = placement.tables(partition)
            if tables is None:
                return retry_later(f"partition {partition} is being restored; retry shortly")
        try:
            response = json_response(answer(tables, location_id, request))
        except queries.QueryError as exc:
            return problem(400, str(exc))
        if from_standby:
            response.headers[ANSWERED_BY_HEADER] = "standby"
        response.headers[VERSION_HEADER] = str(version)
        return response

    return query
