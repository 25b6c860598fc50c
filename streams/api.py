"""The query API: `GET /v1/locations/{id}/revenue|unread|leads`, `GET /metrics`.

A query is answered by the worker that owns the location's partition of the raw topic; any other
worker forwards it there (see `streams.routing`), so every worker can be asked about every location.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from faust.web import Request, Response, View
from yarl import URL

from streams import metrics, queries
from streams.routing import forward, owner_url
from streams.settings import Settings
from streams.tables import contacts, leads, revenue, unread
from streams.tables.projection import Tables
from streams.topics import RAW_WEBHOOKS
from streams.web import authorized, json_response, problem

__all__ = ["install_api"]


def install_api(app: faust.App, settings: Settings, tables: Tables) -> None:
    def answer_revenue(location_id: str, request: Request) -> dict[str, Any]:
        first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
        state = tables[revenue.DAILY_REVENUE].get(location_id)
        return queries.revenue_answer(location_id, state, first, last)

    def answer_unread(location_id: str, request: Request) -> dict[str, Any]:
        return queries.unread_answer(
            location_id,
            tables[unread.UNREAD_BY_LOCATION].get(location_id),
            tables[contacts.CONTACTS].get,
        )

    def answer_leads(location_id: str, request: Request) -> dict[str, Any]:
        first, last = queries.parse_range(request.query.get("from"), request.query.get("to"))
        return queries.leads_answer(location_id, tables[leads.LEADS].get(location_id), first, last)

    for name, answer in (
        ("revenue", answer_revenue),
        ("unread", answer_unread),
        ("leads", answer_leads),
    ):
        app.page(f"/v1/locations/{{location_id}}/{name}")(_location_view(settings, answer))

    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.text(metrics.render(), content_type="text/plain; version=0.0.4")

    app.page("/metrics")(Metrics)


def _location_view(
    settings: Settings, answer: Callable[[str, Request], dict[str, Any]]
) -> type[View]:
    class LocationQuery(View):
        async def get(self, request: Request, location_id: str) -> Response:
            if not authorized(request, settings.api_token):
                return problem(401, "a valid bearer token is required")
            owner = owner_url(self.app, RAW_WEBHOOKS.name, location_id, settings.partitions)
            if owner is None:
                return problem(503, "partition ownership is not known yet; retry shortly")
            if URL(owner) != URL(str(self.app.conf.canonical_url)):
                return await forward(self.app, self.web, owner, request)
            try:
                return json_response(answer(location_id, request))
            except queries.QueryError as exc:
                return problem(400, str(exc))

    return LocationQuery
