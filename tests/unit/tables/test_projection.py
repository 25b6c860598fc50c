"""Each projection's `update` applies its pure folds to its own tables (dicts stand in for the
runtime's tables), so a replay and the live worker compute the same state."""

from __future__ import annotations

from typing import Any

from streams.tables import contacts, leads, revenue, unread
from streams.tables.projection import Fold, Projection
from streams.tables.registry import LIVE_TABLES, PROJECTIONS
from tests.unit.events import event, invoice


def empty(projection: Projection) -> dict[str, dict[Any, Any]]:
    return {name: {} for name in projection.tables}


def by_name(name: str) -> Projection:
    return next(p for p in PROJECTIONS if p.name == name)


def test_the_catalog_names_each_projection_and_its_tables() -> None:
    assert [p.name for p in PROJECTIONS] == [
        "revenue",
        "unread",
        "leads",
        "pipeline",
        "appointments",
        "tasks",
        "email_stats",
        "quotes",
        "registry",
        "message_status",
        "activity",
    ]
    assert by_name("unread").tables == (
        contacts.CONTACTS,
        unread.CONVERSATIONS,
        unread.SEEN_MESSAGES,
        unread.UNREAD_BY_LOCATION,
    )
    assert set(LIVE_TABLES) >= {t for p in PROJECTIONS for t in p.tables}


def test_revenue_update_writes_its_tables_and_says_what_it_recognised() -> None:
    tables = empty(by_name("revenue"))
    tz = event({"type": "LocationSettingsUpdated", "locationId": "loc-1", "timezone": "Asia/Tokyo"})
    assert revenue.update(tables, tz) is None
    change = revenue.update(tables, invoice("partially_paid", 10, at="2026-03-01T20:00:00Z"))
    assert change is not None and change[1].minor == 1000
    assert revenue.update(tables, invoice("partially_paid", 10)) is None  # a redelivery
    assert tables[revenue.DAILY_REVENUE]["loc-1"] == {
        "timezone": "Asia/Tokyo",
        "days": {"2026-03-02": {"USD": 1000}},  # 20:00 UTC is the next day in Tokyo
    }
    assert tables[revenue.INVOICE_PAYMENTS]["loc-1/inv-1"] == {"currency": "USD", "minor": 1000}


def test_unread_projection_folds_contacts_then_conversations_in_log_order() -> None:
    projection = by_name("unread")
    tables = empty(projection)
    for body in (
        {"type": "ContactCreate", "locationId": "L", "id": "c1", "assignedTo": "u1"},
        {
            "type": "InboundMessage",
            "locationId": "L",
            "conversationId": "v1",
            "messageId": "m1",
            "contactId": "c1",
        },
        {"type": "InboundMessage", "locationId": "L", "conversationId": "v1", "messageId": "m1"},
        {
            "type": "InvoicePaid",
            "altId": "L",
            "altType": "location",
            "_id": "i",
            "currency": "USD",
            "amountPaid": 5,
        },
    ):
        projection.update(tables, event(body))
    assert tables[contacts.CONTACTS] == {"c1": {"location": "L", "assigned_to": "u1"}}
    assert tables[unread.UNREAD_BY_LOCATION] == {"L": {"v1": {"unread": 1, "contact": "c1"}}}


def test_leads_update_counts_a_contact_once_on_its_local_day() -> None:
    tables = empty(by_name("leads"))
    create = {
        "type": "ContactCreate",
        "locationId": "L",
        "id": "c1",
        "dateAdded": "2026-03-01T10:00:00Z",
    }
    assert leads.update(tables, event(create)) == (
        "2026-03-01",
        {"timezone": None, "days": {"2026-03-01": 1}},
    )
    assert leads.update(tables, event(create)) is None
    assert tables[leads.LEAD_CONTACTS] == {"L/c1": True}


def test_a_projection_applies_only_the_folds_that_read_the_event_type() -> None:
    seen: list[str] = []
    projection = Projection(
        "p",
        (
            Fold(("a",), frozenset({"X"}), lambda t, e: seen.append(f"a:{e.type}"), family="fa"),
            Fold(("a", "b"), frozenset({"X", "Y"}), lambda t, e: seen.append(f"b:{e.type}"), "fb"),
        ),
        live=False,
    )
    assert projection.tables == ("a", "b") and projection.types == {"X", "Y"}
    projection.update({}, event({"type": "Y"}))
    projection.update({}, event({"type": "X"}))
    projection.update({}, event({"type": "Z"}))
    assert seen == ["b:Y", "a:X", "b:X"]
    # A dead letter re-driven for one family is folded by that family's folds only, as live.
    seen.clear()
    projection.update({}, event({"type": "X"}), redriven_for="fb")
    assert seen == ["b:X"]
