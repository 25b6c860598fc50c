"""Appointment reminders: which are pending, which were sent. Live state only, never replayed.

A reminder is due a lead time (`STREAMS_REMINDER_LEAD_SECONDS`, 15 minutes) before the
appointment's start and is sent at most once per appointment and start time:
- `schedule` (folded by the appointments agent, in log order) makes the appointment's pending
  reminder the one for its current start time; a cancelled or deleted appointment has none, a
  rescheduled one gets one for its new start unless that start was reminded of already.
  Only live records schedule (an import or backfill notifies nobody), and never for an
  appointment that has already started by the worker's clock.
- `fire` (folded by the reminder agent on each tick, see `streams.agents.reminders`) takes the
  pending reminders that are due, records each as sent under "{appointment}@{start}", and returns
  them; one whose appointment started meanwhile (the worker was down) is dropped, never sent late.

Table: `appointment_reminders` (location id -> LocationReminders).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from streams.events import parse_time
from streams.tables.appointments import Appointment, Booking

__all__ = [
    "REMINDERS",
    "LocationReminders",
    "Reminder",
    "fire",
    "schedule",
    "sent_key",
]

REMINDERS = "appointment_reminders"
KEEP_SENT = timedelta(days=1)  # after the start: long enough for any redelivery of the booking


class LocationReminders(TypedDict):
    pending: dict[str, Booking]  # appointment id -> what to remind of
    sent: dict[str, str]  # "{appointment}@{start}" -> start time


@dataclass(frozen=True, slots=True)
class Reminder:
    location_id: str
    appointment_id: str
    booking: Booking

    @property
    def key(self) -> str:
        return sent_key(self.appointment_id, self.booking["start_time"])


def sent_key(appointment_id: str, start_time: str) -> str:
    return f"{appointment_id}@{start_time}"


def _start(booking: Booking) -> datetime:
    start = parse_time(booking["start_time"])
    assert start is not None  # written by Appointment.booking
    return start


def schedule(
    state: LocationReminders | None, appointment: Appointment, now: datetime, live: bool
) -> LocationReminders:
    """The location's reminders once `appointment` is known as the event states it."""
    pending = dict(state["pending"]) if state else {}
    sent = state["sent"] if state else {}
    pending.pop(appointment.appointment_id, None)
    if (
        live
        and not appointment.cancelled
        and appointment.start is not None
        and appointment.start > now
    ):
        booking = appointment.booking()
        if sent_key(appointment.appointment_id, booking["start_time"]) not in sent:
            pending[appointment.appointment_id] = booking
    return {"pending": pending, "sent": sent}


def fire(
    location_id: str, state: LocationReminders, now: datetime, lead: timedelta
) -> tuple[LocationReminders, list[Reminder]]:
    """Take the reminders due at `now`; the state with them recorded as sent, and them."""
    pending: dict[str, Booking] = {}
    sent = {k: s for k, s in state["sent"].items() if (parse_time(s) or now) + KEEP_SENT > now}
    due: list[Reminder] = []
    for appointment_id, booking in state["pending"].items():
        start = _start(booking)
        if start - lead > now:
            pending[appointment_id] = booking
        elif start > now:
            reminder = Reminder(location_id, appointment_id, booking)
            sent[reminder.key] = booking["start_time"]
            due.append(reminder)
        # else: it started while nobody was looking; a late reminder is worse than none
    return {"pending": pending, "sent": sent}, due
