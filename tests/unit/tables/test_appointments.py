from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.events import BadRecord
from streams.tables import appointments, reminders
from streams.tables.appointments import apply_appointment, appointment_from
from tests.unit.events import event

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LEAD = timedelta(minutes=15)


def booking(
    appointment_id: str = "apt-1",
    start: str = "2026-03-02T16:00:00+05:30",  # 10:30 UTC: the documented offset form
    *,
    kind: str = "AppointmentCreate",
    status: str = "confirmed",
    source: str = "live",
    **fields: Any,
) -> Any:
    return event(
        {
            "type": kind,
            "locationId": "loc-1",
            "appointment": {
                "id": appointment_id,
                "address": "1 Main St",
                "title": "Site visit",
                "calendarId": "cal-1",
                "contactId": "c1",
                "groupId": "g1",
                "appointmentStatus": status,
                "assignedUserId": "u1",
                "users": ["u2", "u1"],
                "notes": "",
                "source": "booking_widget",
                "startTime": start,
                "endTime": "2026-03-02T16:30:00+05:30",
                "dateAdded": "2026-03-01T09:00:00.000Z",
                **fields,
            },
        },
        source=source,
    )


def test_times_with_offsets_are_kept_in_utc_and_the_assigned_user_comes_first() -> None:
    appointment = appointment_from(booking())
    assert appointment.start == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    stored = apply_appointment(None, appointment)["apt-1"]
    assert stored["start_time"] == "2026-03-02T10:30:00Z"
    assert stored["end_time"] == "2026-03-02T11:00:00Z"
    assert stored["users"] == ["u1", "u2"]


def test_cancelled_and_deleted_appointments_leave_the_table() -> None:
    tables: dict[str, dict[Any, Any]] = {name: {} for name in appointments.FOLD.tables}
    appointments.update(tables, booking())
    appointments.update(tables, booking("apt-2"))
    appointments.update(tables, booking(status="cancelled", kind="AppointmentUpdate"))
    appointments.update(tables, booking("apt-2", kind="AppointmentDelete"))
    assert tables[appointments.APPOINTMENTS]["loc-1"] == {}


def test_long_finished_appointments_are_dropped_as_later_events_arrive() -> None:
    old = apply_appointment(
        None, appointment_from(booking("old", "2026-01-01T10:00:00Z", endTime=""))
    )
    later = booking("new", dateUpdated="2026-03-01T00:00:00Z")
    later.body["timestamp"] = "2026-03-01T00:00:00Z"
    assert set(apply_appointment(old, appointment_from(later))) == {"new"}


def test_a_late_redelivery_of_an_older_booking_changes_nothing_and_delete_is_final() -> None:
    tables: dict[str, dict[Any, Any]] = {name: {} for name in appointments.FOLD.tables}
    booked = booking(dateUpdated="2026-03-01T09:00:00.000Z")
    moved = booking(
        start="2026-03-02T18:00:00+05:30",
        kind="AppointmentUpdate",
        dateUpdated="2026-03-01T10:00:00.000Z",
    )
    assert appointments.update(tables, booked) is not None
    assert appointments.update(tables, moved) is not None
    assert appointments.update(tables, booked) is None  # HighLevel retried the first, late
    location = tables[appointments.APPOINTMENTS]["loc-1"]
    assert location["apt-1"]["start_time"] == "2026-03-02T12:30:00Z"
    assert appointments.update(tables, booking(kind="AppointmentDelete")) is not None
    later = booking(kind="AppointmentUpdate", dateUpdated="2026-03-01T11:00:00.000Z")
    assert appointments.update(tables, later) is None
    assert tables[appointments.APPOINTMENTS]["loc-1"] == {}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": None}, "appointment.id"),
        ({"startTime": "tomorrow"}, "startTime"),
        ({"startTime": None}, "startTime"),
    ],
)
def test_unusable_appointments_are_bad_records(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        appointment_from(booking(**fields))


def schedule(*events: Any, now: datetime = NOW) -> reminders.LocationReminders:
    state = None
    for e in events:
        state = reminders.schedule(state, appointment_from(e), now, e.live)
    assert state is not None
    return state


def test_one_reminder_per_appointment_and_start_time() -> None:
    state = schedule(booking())
    early, due = reminders.fire("loc-1", state, NOW, LEAD)
    assert due == [] and early == state  # 10:00, due at 10:15
    fired, due = reminders.fire("loc-1", state, NOW + timedelta(minutes=15), LEAD)
    assert [r.key for r in due] == ["apt-1@2026-03-02T10:30:00Z"]
    assert fired["pending"] == {}
    # A redelivery of the same booking after it was sent schedules nothing again.
    again = reminders.schedule(
        fired, appointment_from(booking()), NOW + timedelta(minutes=16), True
    )
    assert again["pending"] == {}


def test_a_reschedule_gets_a_new_reminder_and_a_cancel_none() -> None:
    state = schedule(booking(), booking(start="2026-03-02T11:00:00Z", kind="AppointmentUpdate"))
    _, due = reminders.fire("loc-1", state, datetime(2026, 3, 2, 10, 50, tzinfo=UTC), LEAD)
    assert [r.key for r in due] == ["apt-1@2026-03-02T11:00:00Z"]
    cancelled = schedule(booking(), booking(status="cancelled", kind="AppointmentUpdate"))
    assert cancelled["pending"] == {}
    deleted = schedule(booking(), booking(kind="AppointmentDelete"))
    assert deleted["pending"] == {}


def test_never_for_appointments_past_when_seen_or_started_before_the_tick() -> None:
    assert schedule(booking(), now=datetime(2026, 3, 2, 10, 31, tzinfo=UTC))["pending"] == {}
    state = schedule(booking())
    missed, due = reminders.fire("loc-1", state, datetime(2026, 3, 2, 10, 31, tzinfo=UTC), LEAD)
    assert due == [] and missed["pending"] == {}
    # Seen inside the lead time but before the start: sent at the next tick.
    late = schedule(booking(), now=datetime(2026, 3, 2, 10, 20, tzinfo=UTC))
    _, due = reminders.fire("loc-1", late, datetime(2026, 3, 2, 10, 20, 1, tzinfo=UTC), LEAD)
    assert len(due) == 1


def test_imported_history_schedules_nothing_but_a_cancel_from_anywhere_unschedules() -> None:
    assert schedule(booking(source="import"))["pending"] == {}
    assert schedule(booking(), booking(status="cancelled", source="backfill"))["pending"] == {}


def test_sent_records_are_forgotten_a_day_after_the_start() -> None:
    state = schedule(booking())
    fired, _ = reminders.fire("loc-1", state, NOW + LEAD, LEAD)
    assert fired["sent"]
    later, _ = reminders.fire("loc-1", fired, NOW + timedelta(days=1, hours=1), LEAD)
    assert later == {"pending": {}, "sent": {}}
