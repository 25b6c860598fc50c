"""`appointment-reminder`: sent at a wall-clock time, exactly once as the subscriber sees it.

The runtime's loop folds a tick into every partition it owns once a second (`reminder_tick`), as
Kafka Streams runs a punctuation: the partition's due reminders (`reminders.fire`) are recorded as
sent in its table and their derived events emitted, in the same transaction, all or nothing.
A reminder's derived-event id is a digest of (location, appointment, start time, channel), so
every attempt to send it carries the same id. A reminder is sent if and only if it is recorded
as sent: a restart or rebalance finds it in the restored table and never sends it again. An
appointment that started while no worker was running gets no reminder at all: a late one is
worse than none.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from streams.derived import derived_event, user_channel
from streams.events import Event, parse_time
from streams.routing import partition_for
from streams.runtime.loop import Tick
from streams.tables import location_registry, reminders
from streams.tables.projection import Tables

__all__ = ["TICK_SECONDS", "appointment_reminder_data", "due_reminders", "reminder_tick"]

TICK_SECONDS = 1.0
REMINDER_EVENT = "appointment-reminder"


def appointment_reminder_data(reminder: reminders.Reminder, lead_seconds: int) -> dict[str, Any]:
    booking = reminder.booking
    return {
        "location_id": reminder.location_id,
        "appointment_id": reminder.appointment_id,
        "title": booking["title"],
        "start_time": booking["start_time"],
        "end_time": booking["end_time"],
        "assigned_user_id": booking["assigned_user_id"],
        "users": booking["users"],
        "contact_id": booking["contact_id"],
        "calendar_id": booking["calendar_id"],
        "lead_seconds": lead_seconds,
    }


def reminder_source(reminder: reminders.Reminder, due: datetime, tick: Any) -> Event:
    """The event a reminder is derived from: its identity is the appointment and start time."""
    return Event(
        type="AppointmentReminderDue",
        body={"timestamp": due.isoformat()},
        webhook_id=f"reminder:{reminder.location_id}/{reminder.key}",
        received_at=int(due.timestamp() * 1000),
        source="live",
        partition=tick.partition,
        offset=tick.offset,
    )


def due_reminders(
    tables: Tables, partition: int, partitions: int, now: datetime, lead: timedelta, tick: Any
) -> list[dict[str, Any]]:
    """Fire the due reminders of the locations in `partition`; their derived events."""
    table, registry = tables[reminders.REMINDERS], tables[location_registry.LOCATION_REGISTRY]
    out: list[dict[str, Any]] = []
    for location_id, state in list(table.items()):
        if state is None or partition_for(location_id, partitions) != partition:
            continue  # another partition's: its own tick fires it, into its own changelog
        fired, due = reminders.fire(location_id, state, now, lead)
        if fired == state:
            continue
        if fired["pending"] or fired["sent"]:
            table[location_id] = fired
        else:
            table.pop(location_id, None)
        if not location_registry.notifies(registry.get(location_id)):
            continue  # uninstalled: recorded as sent, told to nobody
        for reminder in due:
            start = parse_time(reminder.booking["start_time"])
            assert start is not None  # the appointments fold wrote it
            source = reminder_source(reminder, start - lead, tick)
            data = appointment_reminder_data(reminder, int(lead.total_seconds()))
            for user in reminder.booking["users"]:
                out.append(derived_event(REMINDER_EVENT, user_channel(user), data, source))
    return out


def reminder_tick(lead_seconds: int, partitions: Callable[[], int]) -> Tick:
    """The loop's tick: fire the due reminders of one partition's locations."""
    lead = timedelta(seconds=lead_seconds)

    def fire(tables: Tables, partition: int, position: int) -> list[dict[str, Any]]:
        tick = SimpleNamespace(partition=partition, offset=position)
        return due_reminders(tables, partition, partitions(), datetime.now(UTC), lead, tick)

    return fire
