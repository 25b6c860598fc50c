"""The read models' documents against the HTTP answers of the same state (pure, no MongoDB)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest

from streams import queries
from streams.events import BadRecord
from streams.mongo_sink.documents import READ_MODELS, affected_locations, models_of, tables_of
from streams.tables import appointments, contacts, leads, pipeline, revenue, unread
from streams.tables.registry import PROJECTIONS
from tests.traffic import generate
from tests.unit.events import event

LOCATIONS = [f"loc{n}" for n in range(6)]


def folded(bodies: list[dict[str, Any]]) -> dict[str, dict[Any, Any]]:
    """Every projection's tables, folded over plain dicts as the worker folds them."""
    tables: dict[str, dict[Any, Any]] = {t: {} for p in PROJECTIONS for t in p.tables}
    for body in bodies:
        ev = event(body)
        for projection in PROJECTIONS:
            with contextlib.suppress(BadRecord):
                projection.update(tables, ev)
    return tables


@pytest.fixture(scope="module")
def tables() -> dict[str, dict[Any, Any]]:
    return folded(generate(3_000, locations=len(LOCATIONS), pipeline=True))


def docs(tables: dict[str, dict[Any, Any]], collection: str, location: str) -> list[dict]:
    model = next(m for m in READ_MODELS if m.collection == collection)
    return list(model.documents(tables, location).values())


@pytest.mark.parametrize("location", LOCATIONS)
def test_revenue_days_are_the_answers_days_in_minor_units(tables, location) -> None:
    answer = queries.revenue_answer(
        location, tables[revenue.DAILY_REVENUE].get(location), None, None
    )
    rows = docs(tables, "revenue_days", location)
    assert answer["days"], "the traffic pays every location something"
    assert sorted((d["date"], d["currency"], d["amount"]) for d in rows) == [
        (d["date"], d["currency"], d["amount"]) for d in answer["days"]
    ]
    assert all(isinstance(d["amount_minor"], int) and d["amount_minor"] for d in rows)


@pytest.mark.parametrize("location", LOCATIONS)
def test_unread_documents_are_the_answer(tables, location) -> None:
    answer = queries.unread_answer(
        location, tables[unread.UNREAD_BY_LOCATION].get(location), tables[contacts.CONTACTS].get
    )
    conversations = docs(tables, "unread_conversations", location)
    assert {d["conversation_id"]: d["unread"] for d in conversations} == answer["conversations"]
    (summary,) = docs(tables, "unread_locations", location)
    assert (summary["total"], summary["users"]) == (answer["total"], answer["users"])


@pytest.mark.parametrize("location", LOCATIONS)
def test_leads_and_pipeline_documents_are_the_answers(tables, location) -> None:
    lead_answer = queries.leads_answer(location, tables[leads.LEADS].get(location), None, None)
    assert sorted((d["date"], d["count"]) for d in docs(tables, "leads_days", location)) == [
        (d["date"], d["count"]) for d in lead_answer["days"]
    ]
    answer = queries.pipeline_answer(location, tables[pipeline.PIPELINES].get(location), None, None)
    stages = docs(tables, "pipeline_stages", location)
    assert sorted(
        (d["pipeline_id"], d["stage_id"], d["open_count"], d["open_value"]) for d in stages
    ) == [
        (s["pipeline_id"], s["stage_id"], s["open_count"], s["open_value"])
        for s in answer["stages"]
    ]
    won = docs(tables, "pipeline_won_days", location)
    assert sorted((d["date"], d["value"]) for d in won) == [
        (w["date"], w["value"]) for w in answer["won"]
    ]


@pytest.mark.parametrize("location", LOCATIONS)
def test_appointments_after_now_are_the_answers_upcoming(tables, location) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    answer = queries.appointments_answer(
        location, tables[appointments.APPOINTMENTS].get(location), now
    )
    upcoming = [d for d in docs(tables, "appointments", location) if d["starts_at"] > now]
    assert len(upcoming) == answer["total"]
    assert {d["appointment_id"] for d in upcoming} == {
        e["appointment_id"] for entries in answer["users"].values() for e in entries
    }


def test_no_money_is_a_float(tables) -> None:
    for model in READ_MODELS:
        for location in LOCATIONS:
            for doc in model.documents(tables, location).values():
                assert not any(isinstance(v, float) for v in doc.values()), (model, doc)


def test_a_location_without_state_has_no_documents() -> None:
    empty = folded([])
    assert all(not m.documents(empty, "nowhere") for m in READ_MODELS)


def test_affected_locations() -> None:
    assert affected_locations(revenue.DAILY_REVENUE, "loc1", (None, {})) == {"loc1"}
    contact = {"location": "loc2", "assigned_to": "u1"}
    assert affected_locations(contacts.CONTACTS, "c1", (contact, None)) == {"loc2"}
    assert affected_locations(revenue.INVOICE_PAYMENTS, "loc1/inv", (None, {})) == set()


def test_each_projection_reads_its_tables() -> None:
    assert {m.projection for m in models_of(["unread"])} == {"unread"}
    assert tables_of(["unread"]) == {unread.UNREAD_BY_LOCATION, contacts.CONTACTS}
