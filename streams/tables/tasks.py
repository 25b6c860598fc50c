"""Open tasks per assignee.

`TaskCreate` opens a task (or, for a task already known, states it again: a changed `assignedTo`
moves it); `TaskComplete` and `TaskDelete` close it for good, so a late redelivery of its
`TaskCreate` does not reopen it. Task payloads are sent without `contactId` and `body` although
the docs list them (HighLevel docs issue #332), so neither is required.

Tables: `task_states` ("{location}/{task}" -> TaskState) and `open_tasks` (location id ->
{task id: OpenTask}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from streams.events import BadRecord, Event
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "TASK_TYPES",
    "OpenTask",
    "Task",
    "TaskChange",
    "apply_task",
    "task_from",
    "update",
]

TASK_STATES = "task_states"
OPEN_TASKS = "open_tasks"
TASK_TYPES = frozenset({"TaskCreate", "TaskComplete", "TaskDelete"})
CLOSING = {"TaskComplete": "completed", "TaskDelete": "deleted"}


class OpenTask(TypedDict):
    title: str | None
    assigned_to: str | None
    contact_id: str | None
    due_date: str | None


class TaskState(TypedDict):
    status: str  # open | completed | deleted
    assigned_to: str | None


@dataclass(frozen=True, slots=True)
class Task:
    location_id: str
    task_id: str
    status: str
    title: str | None
    assigned_to: str | None
    contact_id: str | None
    due_date: str | None

    @property
    def key(self) -> str:
        return f"{self.location_id}/{self.task_id}"

    def open_task(self) -> OpenTask:
        return {
            "title": self.title,
            "assigned_to": self.assigned_to,
            "contact_id": self.contact_id,
            "due_date": self.due_date,
        }


@dataclass(frozen=True, slots=True)
class TaskChange:
    """What a task event changed: `assigned` is set when the task now belongs to a new user."""

    task: Task
    assigned: str | None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def task_from(event: Event) -> Task:
    body = event.body
    location_id, task_id = event.location_id, _text(body.get("id"))
    if location_id is None or task_id is None:
        raise BadRecord(f"{event.type}: locationId and id (the task id) are required")
    assigned = body.get("assignedTo")
    if assigned is not None and not isinstance(assigned, str):
        raise BadRecord(f"{event.type}: assignedTo must be a user id string, got {assigned!r}")
    return Task(
        location_id=location_id,
        task_id=task_id,
        status=CLOSING.get(event.type, "open"),
        title=_text(body.get("title")),
        assigned_to=assigned or None,
        contact_id=_text(body.get("contactId")),
        due_date=_text(body.get("dueDate")),
    )


def apply_task(
    location: dict[str, OpenTask] | None, state: TaskState | None, task: Task
) -> tuple[dict[str, OpenTask], TaskState, TaskChange | None]:
    """The location's open tasks and the task's state after `task`; None when nothing changed."""
    tasks = dict(location or {})
    if state is not None and state["status"] != "open":
        return tasks, state, None  # closed for good
    if task.status != "open":
        tasks.pop(task.task_id, None)
        return (
            tasks,
            {"status": task.status, "assigned_to": task.assigned_to},
            TaskChange(task, None),
        )
    if tasks.get(task.task_id) == task.open_task():
        return tasks, state or {"status": "open", "assigned_to": task.assigned_to}, None
    tasks[task.task_id] = task.open_task()
    moved = task.assigned_to is not None and (
        state is None or state["assigned_to"] != task.assigned_to
    )
    return (
        tasks,
        {"status": "open", "assigned_to": task.assigned_to},
        TaskChange(task, task.assigned_to if moved else None),
    )


def update(tables: Tables, event: Event) -> TaskChange | None:
    """Fold `event` into the task tables; what changed, if anything."""
    task = task_from(event)
    states, open_tasks = tables[TASK_STATES], tables[OPEN_TASKS]
    tasks, state, change = apply_task(open_tasks.get(task.location_id), states.get(task.key), task)
    if change is None:
        return None
    states[task.key] = state
    open_tasks[task.location_id] = tasks
    return change


FOLD = Fold((TASK_STATES, OPEN_TASKS), TASK_TYPES, update, family="tasks")
