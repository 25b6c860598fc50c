from __future__ import annotations

from datetime import date

import pytest

from streams.queries import QueryError, leads_answer, parse_range, revenue_answer, unread_answer


def test_revenue_answer_in_decimal_strings_with_totals_and_range() -> None:
    state = {
        "timezone": None,
        "days": {
            "2026-03-01": {"USD": 1050, "JPY": 300},
            "2026-03-02": {"USD": 1450},
            "2026-04-01": {"USD": 0},
        },
    }
    answer = revenue_answer("L1", state, date(2026, 3, 1), date(2026, 3, 31))
    assert answer == {
        "location_id": "L1",
        "from": "2026-03-01",
        "to": "2026-03-31",
        "days": [
            {"date": "2026-03-01", "currency": "JPY", "amount": "300"},
            {"date": "2026-03-01", "currency": "USD", "amount": "10.50"},
            {"date": "2026-03-02", "currency": "USD", "amount": "14.50"},
        ],
        "totals": {"JPY": "300", "USD": "25.00"},
    }
    assert revenue_answer("L2", None, None, None)["days"] == []


def test_unread_answer_sums_per_user_through_contact_assignment() -> None:
    state = {
        "c1": {"unread": 2, "contact": "k1"},
        "c2": {"unread": 3, "contact": "k2"},
        "c3": {"unread": 1, "contact": None},
    }
    contacts = {
        "k1": {"location": "L", "assigned_to": "u1"},
        "k2": {"location": "L", "assigned_to": "u1"},
    }
    answer = unread_answer("L", state, contacts.get)
    assert answer == {
        "location_id": "L",
        "total": 6,
        "conversations": {"c1": 2, "c2": 3, "c3": 1},
        "users": {"u1": 5},
    }


def test_leads_answer_omits_zero_days() -> None:
    state = {"timezone": "UTC", "days": {"2026-03-01": 2, "2026-03-02": 0, "2026-03-03": 1}}
    assert leads_answer("L", state, None, date(2026, 3, 2)) == {
        "location_id": "L",
        "from": None,
        "to": "2026-03-02",
        "days": [{"date": "2026-03-01", "count": 2}],
        "total": 2,
    }


def test_bad_ranges_are_refused_with_the_reason() -> None:
    with pytest.raises(QueryError, match="from must be a date"):
        parse_range("March", None)
    with pytest.raises(QueryError, match="after"):
        parse_range("2026-03-02", "2026-03-01")
