from __future__ import annotations

from typing import Any

import pytest

from streams.events import BadRecord
from streams.tables import tasks
from tests.unit.events import event


def task(kind: str = "TaskCreate", **fields: Any) -> Any:
    # As delivered (docs issue #332): TaskCreate comes without `contactId` and `body`.
    body = {
        "type": kind,
        "locationId": "loc-1",
        "id": "t1",
        "assignedTo": "u1",
        "title": "Call back",
        "dateAdded": "2026-03-01T09:00:00.000Z",
        "dueDate": "2026-03-03T09:00:00.000Z",
    }
    return event({**body, **fields})


def fold(*events: Any) -> tuple[dict[str, dict[Any, Any]], list[Any]]:
    tables: dict[str, dict[Any, Any]] = {name: {} for name in tasks.FOLD.tables}
    return tables, [tasks.update(tables, e) for e in events]


def test_a_task_without_contact_or_body_opens_for_its_assignee() -> None:
    tables, changes = fold(task())
    assert tables[tasks.OPEN_TASKS]["loc-1"] == {
        "t1": {
            "title": "Call back",
            "assigned_to": "u1",
            "contact_id": None,
            "due_date": "2026-03-03T09:00:00.000Z",
        }
    }
    assert changes[0].assigned == "u1"


def test_a_redelivery_changes_nothing_and_a_new_assignee_moves_it() -> None:
    tables, changes = fold(task(), task(), task(assignedTo="u2"))
    assert changes[1] is None
    assert changes[2].assigned == "u2"
    assert tables[tasks.OPEN_TASKS]["loc-1"]["t1"]["assigned_to"] == "u2"


def test_complete_and_delete_close_for_good() -> None:
    tables, changes = fold(
        task(), task(id="t2"), task("TaskComplete"), task("TaskDelete", id="t2"), task()
    )
    assert tables[tasks.OPEN_TASKS]["loc-1"] == {}
    assert changes[2].assigned is None and changes[4] is None
    assert tables[tasks.TASK_STATES]["loc-1/t1"]["status"] == "completed"


def test_an_unassigned_task_is_open_but_assigned_to_nobody() -> None:
    tables, changes = fold(task(assignedTo=None))
    assert tables[tasks.OPEN_TASKS]["loc-1"]["t1"]["assigned_to"] is None
    assert changes[0].assigned is None


@pytest.mark.parametrize(
    ("fields", "reason"), [({"id": None}, "id"), ({"assignedTo": 3}, "assignedTo")]
)
def test_unusable_tasks_are_bad_records(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        tasks.task_from(task(**fields))
