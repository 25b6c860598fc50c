"""Appointments per location, for upcoming appointments per user.

`AppointmentCreate` and `AppointmentUpdate` carry the whole appointment under `appointment`; the
latest one (log order) is what is known, except that an event whose `dateUpdated` is older than
the one already applied is a late redelivery (HighLevel retries for hours) and changes nothing,
and `AppointmentDelete` is final. A cancelled appointment (`appointmentStatus` cancelled) or a
deleted one leaves the table. Times carry an offset (`2023-09-25T16:00:00+05:30`) and are kept
in UTC. Appointments that ended more than a day before the event being folded are dropped, so
the state stays bounded and a replay drops exactly the same ones.

Tables: `appointments` (location id -> {appointment id: Booking}) and `appointment_versions`
("{location}/{appointment}" -> Version).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from streams.events import BadRecord, Event, event_time, iso_z, parse_time
from streams.tables.projection import Fold, Tables

__all__ = [
    "APPOINTMENT_TYPES",
    "FOLD",
    "Appointment",
    "Booking",
    "apply_appointment",
    "appointment_from",
    "is_stale",
    "iso",
    "update",
]

APPOINTMENTS = "appointments"
APPOINTMENT_VERSIONS = "appointment_versions"
APPOINTMENT_TYPES = frozenset({"AppointmentCreate", "AppointmentUpdate", "AppointmentDelete"})
CANCELLED = "cancelled"
KEEP_AFTER_END = timedelta(days=1)


class Booking(TypedDict):
    start_time: str  # ISO-8601 UTC
    end_time: str | None
    title: str | None
    status: str | None
    assigned_user_id: str | None
    users: list[str]  # everyone to remind: the assigned user first, then the other users
    contact_id: str | None
    calendar_id: str | None


class Version(TypedDict):
    updated_at: str | None  # the latest `dateUpdated` applied (ISO-8601 UTC)
    deleted: bool


@dataclass(frozen=True, slots=True)
class Appointment:
    location_id: str
    appointment_id: str
    start: datetime | None
    end: datetime | None
    title: str | None
    status: str | None
    assigned_user_id: str | None
    users: tuple[str, ...]
    contact_id: str | None
    calendar_id: str | None
    cancelled: bool  # cancelled or deleted: no longer happening
    deleted: bool
    updated_at: datetime | None  # `dateUpdated`
    occurred_at: datetime

    @property
    def key(self) -> str:
        return f"{self.location_id}/{self.appointment_id}"

    def booking(self) -> Booking:
        assert self.start is not None
        return {
            "start_time": iso(self.start),
            "end_time": iso(self.end) if self.end else None,
            "title": self.title,
            "status": self.status,
            "assigned_user_id": self.assigned_user_id,
            "users": list(self.users),
            "contact_id": self.contact_id,
            "calendar_id": self.calendar_id,
        }


def iso(moment: datetime) -> str:
    """UTC, ISO-8601, `Z`: the form every time in these tables and derived events takes."""
    return iso_z(moment.astimezone(UTC))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(event: Event, body: dict[str, object], name: str) -> datetime | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    parsed = parse_time(raw)
    if parsed is None:
        raise BadRecord(f"{event.type}: appointment.{name} is not an ISO-8601 time: {raw!r}")
    return parsed


def appointment_from(event: Event) -> Appointment:
    body = event.body.get("appointment")
    location_id = event.location_id
    if location_id is None or not isinstance(body, dict) or _text(body.get("id")) is None:
        raise BadRecord(f"{event.type}: locationId and appointment.id are required")
    status = _text(body.get("appointmentStatus"))
    start = _time(event, body, "startTime")
    cancelled = event.type == "AppointmentDelete" or status == CANCELLED
    if start is None and not cancelled:
        raise BadRecord(f"{event.type}: appointment.startTime is required")
    assigned = _text(body.get("assignedUserId"))
    others = body.get("users")
    users = [assigned] if assigned else []
    if isinstance(others, list):
        users += [u for u in others if isinstance(u, str) and u and u not in users]
    return Appointment(
        location_id=location_id,
        appointment_id=str(body["id"]),
        start=start,
        end=_time(event, body, "endTime"),
        title=_text(body.get("title")),
        status=status,
        assigned_user_id=assigned,
        users=tuple(users),
        contact_id=_text(body.get("contactId")),
        calendar_id=_text(body.get("calendarId")),
        cancelled=cancelled,
        deleted=event.type == "AppointmentDelete",
        updated_at=_time(event, body, "dateUpdated"),
        occurred_at=event_time(event),
    )


def apply_appointment(
    location: dict[str, Booking] | None, appointment: Appointment
) -> dict[str, Booking]:
    """The location's appointments after `appointment` (and without long-finished ones)."""
    cutoff = appointment.occurred_at - KEEP_AFTER_END
    kept = {
        key: booking
        for key, booking in (location or {}).items()
        if key != appointment.appointment_id
        and (parse_time(booking["end_time"] or booking["start_time"]) or cutoff) >= cutoff
    }
    if not appointment.cancelled:
        kept[appointment.appointment_id] = appointment.booking()
    return kept


def is_stale(version: Version | None, appointment: Appointment) -> bool:
    """Whether what is known of the appointment is newer than `appointment` states."""
    if version is None:
        return False
    if version["deleted"]:
        return True
    known = parse_time(version["updated_at"])
    return bool(known and appointment.updated_at and appointment.updated_at < known)


def next_version(version: Version | None, appointment: Appointment) -> Version:
    known = parse_time(version["updated_at"]) if version else None
    times = [t for t in (known, appointment.updated_at) if t is not None]
    return {"updated_at": iso(max(times)) if times else None, "deleted": appointment.deleted}


def update(tables: Tables, event: Event) -> Appointment | None:
    """Fold `event` into the appointment tables; the appointment as the event states it, or None
    when it is older than what is known (nothing changed)."""
    appointment = appointment_from(event)
    versions = tables[APPOINTMENT_VERSIONS]
    version = versions.get(appointment.key)
    if is_stale(version, appointment):
        return None
    versions[appointment.key] = next_version(version, appointment)
    table = tables[APPOINTMENTS]
    table[appointment.location_id] = apply_appointment(
        table.get(appointment.location_id), appointment
    )
    return appointment


FOLD = Fold((APPOINTMENTS, APPOINTMENT_VERSIONS), APPOINTMENT_TYPES, update, family="appointments")
