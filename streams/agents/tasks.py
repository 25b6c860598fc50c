"""Tasks family: open tasks per assignee; `task-assigned` when a task is created for or moved to
a user."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, user_channel
from streams.events import Event
from streams.tables import tasks
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler", "task_assigned_data"]

TYPES = tasks.TASK_TYPES


def task_assigned_data(task: tasks.Task) -> dict[str, Any]:
    return {
        "location_id": task.location_id,
        "task_id": task.task_id,
        "title": task.title,
        "due_date": task.due_date,
        "contact_id": task.contact_id,
        "assigned_to": task.assigned_to,
    }


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        change = tasks.update(tables, event)
        if change is None or change.assigned is None or not event.live:
            return []
        return [
            derived_event(
                "task-assigned",
                user_channel(change.assigned),
                task_assigned_data(change.task),
                event,
            )
        ]

    return handle
