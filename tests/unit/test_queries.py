from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from streams.queries import (
    QueryError,
    appointments_answer,
    dashboard_answer,
    email_stats_answer,
    leads_answer,
    parse_range,
    pipeline_answer,
    registry_answer,
    revenue_answer,
    tasks_answer,
    unread_answer,
)


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


def test_pipeline_answer_lists_open_stages_and_won_days_in_range() -> None:
    state = {
        "timezone": None,
        "stages": {"p1": {"s2": {"open": 1, "value": 50}, "s1": {"open": 2, "value": 14049}}},
        "won": {"2026-03-01": 4000, "2026-03-05": 1, "2026-03-02": 0},
    }
    answer = pipeline_answer("L1", state, date(2026, 3, 1), date(2026, 3, 4))
    assert answer["stages"] == [
        {"pipeline_id": "p1", "stage_id": "s1", "open_count": 2, "open_value": "140.49"},
        {"pipeline_id": "p1", "stage_id": "s2", "open_count": 1, "open_value": "0.50"},
    ]
    assert (answer["open_count"], answer["open_value"]) == (3, "140.99")
    assert answer["won"] == [{"date": "2026-03-01", "value": "40.00"}]
    assert answer["won_total"] == "40.00"
    assert pipeline_answer("L2", None, None, None)["won_total"] == "0.00"


def test_appointments_answer_lists_what_has_not_started_per_user() -> None:
    def booking(start: str, users: list[str]) -> dict[str, object]:
        return {
            "start_time": start,
            "end_time": None,
            "title": "t",
            "status": "confirmed",
            "assigned_user_id": users[0],
            "users": users,
            "contact_id": None,
            "calendar_id": None,
        }

    state = {
        "late": booking("2026-03-02T12:00:00Z", ["u1", "u2"]),
        "early": booking("2026-03-02T11:00:00Z", ["u1"]),
        "past": booking("2026-03-02T09:00:00Z", ["u1"]),
    }
    answer = appointments_answer("L1", state, datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert answer["total"] == 2
    assert [a["appointment_id"] for a in answer["users"]["u1"]] == ["early", "late"]
    assert [a["appointment_id"] for a in answer["users"]["u2"]] == ["late"]


def test_tasks_email_stats_and_registry_answers() -> None:
    open_task = {"title": "Call", "assigned_to": "u1", "contact_id": None, "due_date": None}
    tasks = tasks_answer("L1", {"t1": open_task, "t2": {**open_task, "assigned_to": None}})
    assert tasks["total"] == 2
    assert [t["task_id"] for t in tasks["assignees"]["u1"]] == ["t1"]
    assert [t["task_id"] for t in tasks["unassigned"]] == ["t2"]
    stats = {
        "timezone": None,
        "days": {"2026-03-01": {"delivered": 2, "opened": 1}, "2026-04-01": {"delivered": 5}},
    }
    answer = email_stats_answer("L1", stats, None, date(2026, 3, 31))
    assert answer["totals"] == {"delivered": 2, "opened": 1}
    assert len(answer["days"]) == 2
    assert registry_answer("L9", None)["notifies"] is True


def test_the_dashboard_is_the_locations_day_in_its_own_timezone() -> None:
    # 23:30 UTC on March 2 is already March 3 in Tokyo.
    now = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    answer = dashboard_answer(
        "L1",
        revenue={
            "timezone": "Asia/Tokyo",
            "days": {"2026-03-03": {"USD": 1250, "JPY": 900}, "2026-02-01": {"USD": 5}},
        },
        leads={"timezone": "Asia/Tokyo", "days": {"2026-03-03": 4, "2026-03-02": 9}},
        pipeline={"timezone": "Asia/Tokyo", "stages": {}, "won": {"2026-03-03": 150000}},
        unread={"c1": {"unread": 2, "contact": None}, "c2": {"unread": 3, "contact": None}},
        appointments={
            "a-past": {**_booking("2026-03-02T10:00:00Z")},
            "a-next": {**_booking("2026-03-03T09:00:00Z")},
        },
        tasks={"t1": {"title": "Call", "assigned_to": "u1", "contact_id": None, "due_date": None}},
        activity=[{"id": f"w{n}", "at": "x", "kind": "payment"} for n in range(12)],  # type: ignore[misc]
        now=now,
    )
    assert answer["today"] == "2026-03-03" and answer["timezone"] == "Asia/Tokyo"
    assert answer["revenue_today"] == {"JPY": "900", "USD": "12.50"}
    assert [d["date"] for d in answer["revenue_days"]] == ["2026-03-03", "2026-03-03"]  # 30 days
    assert answer["leads_today"] == 4 and answer["won_today"] == "1500.00"
    assert answer["unread"] == 5 and answer["open_tasks"] == 1
    assert [a["appointment_id"] for a in answer["appointments"]] == ["a-next"]
    assert len(answer["activity"]) == 10
    empty = dashboard_answer("L2", None, None, None, None, None, None, None, now)
    assert empty["today"] == "2026-03-02" and empty["revenue_today"] == {} and empty["unread"] == 0


def _booking(start: str) -> dict[str, object]:
    return {
        "start_time": start,
        "end_time": None,
        "title": "Visit",
        "status": "confirmed",
        "assigned_user_id": "u1",
        "users": ["u1"],
        "contact_id": None,
        "calendar_id": None,
    }
