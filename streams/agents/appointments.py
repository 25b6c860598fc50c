"""Appointments family: upcoming appointments per user, and each appointment's pending reminder.

Nothing is sent when an appointment is booked; its `appointment-reminder` is sent by the reminder
agent (`streams.agents.reminders`) when it falls due.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.events import Event
from streams.tables import appointments, reminders
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler"]

TYPES = appointments.APPOINTMENT_TYPES


def handler(tables: Tables) -> Any:
    pending = tables[reminders.REMINDERS]

    def handle(event: Event) -> list[dict[str, Any]]:
        appointment = appointments.update(tables, event)
        if appointment is None:
            return []  # a late redelivery: its start time may no longer hold
        # The wall clock, not the event's time: whether the appointment is still ahead is a
        # question about now (a backlog or a late redelivery must not schedule the past).
        now = datetime.now(UTC)
        state = pending.get(appointment.location_id)
        scheduled = reminders.schedule(state, appointment, now, event.live)
        if scheduled != (state or {"pending": {}, "sent": {}}):
            pending[appointment.location_id] = scheduled
        return []

    return handle
