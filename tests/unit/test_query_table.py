from __future__ import annotations

from typing import Any

import pytest

from streams.query_table import render_table

ANSWERS: dict[str, dict[str, Any]] = {
    "activity": {
        "location_id": "L1",
        "contact_id": "c1",
        "entries": [
            {
                "id": "message:m1",
                "at": "2026-12-04T10:00:00.000Z",
                "kind": "message-received",
                "contact_id": "c1",
                "ref": "m1",
                "title": "Can we move it to Friday?",
            }
        ],
    },
    "appointments": {
        "location_id": "L1",
        "as_of": "2026-12-04T10:00:00Z",
        "total": 1,
        "users": {
            "u1": [
                {
                    "appointment_id": "a1",
                    "start_time": "2027-06-03T09:00:00Z",
                    "end_time": "2027-06-03T10:00:00Z",
                    "title": "Roof inspection",
                    "status": "confirmed",
                    "contact_id": "c1",
                    "calendar_id": "cal",
                }
            ]
        },
    },
    "tasks": {
        "location_id": "L1",
        "total": 2,
        "assignees": {
            "u1": [{"task_id": "t1", "title": "Call", "due_date": None, "contact_id": None}]
        },
        "unassigned": [
            {"task_id": "t2", "title": "Quote", "due_date": "2027-01-01", "contact_id": None}
        ],
    },
    "email_stats": {
        "location_id": "L1",
        "from": None,
        "to": None,
        "days": [{"date": "2026-12-03", "event": "delivered", "count": 3}],
        "totals": {"delivered": 3},
    },
    "registry": {"location_id": "L1", "installed": True, "plan_id": None, "notifies": True},
}


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_every_kind_reads_as_a_table_not_json(kind: str) -> None:
    shown = render_table(kind, ANSWERS[kind])
    assert "{" not in shown and '"' not in shown
    assert "L1" in shown.splitlines()[0]


def test_tables_carry_the_figures() -> None:
    assert "2027-06-03T09:00:00Z" in render_table("appointments", ANSWERS["appointments"])
    tasks = render_table("tasks", ANSWERS["tasks"])
    assert "(unassigned)" in tasks and "Quote" in tasks and "Call" in tasks
    assert "delivered" in render_table("email_stats", ANSWERS["email_stats"])
    activity = render_table("activity", ANSWERS["activity"])
    assert "contact c1 of L1" in activity and "message-received" in activity
    assert "Can we move it to Friday?" in activity


def test_unread_without_users_shows_no_empty_heading() -> None:
    answer = {"location_id": "L1", "total": 2, "conversations": {"c1": 2}, "users": {}}
    shown = render_table("unread", answer)
    assert "by conversation:" in shown and "by user:" not in shown
