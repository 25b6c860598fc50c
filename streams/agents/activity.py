"""Activity family: each contact's and location's recent activity; an `activity` event on the
location channel for each new entry. It reads the types other families own (contacts, notes,
tasks, messages, payments, appointments, opportunities) and never refuses one: their own
families say why a record is bad."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel
from streams.events import Event
from streams.tables import activity
from streams.tables.projection import Tables

__all__ = ["TYPES", "activity_data", "handler"]

TYPES = activity.TYPES


def activity_data(location_id: str, entry: activity.Entry) -> dict[str, Any]:
    return {"location_id": location_id, **entry}


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        entry = activity.update(tables, event)
        if entry is None or not event.live or event.location_id is None:
            return []
        data = activity_data(event.location_id, entry)
        return [derived_event("activity", location_channel(event.location_id), data, event)]

    return handle
