"""Appointment reminders against the real broker and the Ably stand-in, with the lead time set to
four minutes and appointments starting seconds after that: one reminder per appointment and start time, none after a cancel, one new after a
reschedule, none for appointments already past or only imported, and none sent twice across a
worker restart (checked on the derived topic, where a repeat would show even though Ably would
drop it)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from streams.ingress.raw_log import RawLog
from tests.integration.processes import Worker, http, start_worker, wait_for
from tests.integration.services import AblyServer
from tests.integration.test_replay import derived_head, derived_since
from tests.integration.webhooks import post_webhook, query, webhook_env

LEAD = 240  # seconds: long enough to cover a worker restart on a busy machine; every
# reminder below still falls due within seconds of the test's start


INDIA = timezone(timedelta(hours=5, minutes=30))


def at(seconds: float) -> str:
    """A time `seconds` from now, as HighLevel writes appointment times (with an offset)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.astimezone(INDIA).isoformat(timespec="seconds")


def utc(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat().replace("+00:00", "Z")


def appointment(
    location: str, appointment_id: str, start: str, *, status: str = "confirmed", kind: str = ""
) -> dict[str, Any]:
    return {
        "type": kind or "AppointmentCreate",
        "locationId": location,
        "appointment": {
            "id": appointment_id,
            "title": f"Visit {appointment_id}",
            "calendarId": "cal-1",
            "contactId": "c-1",
            "appointmentStatus": status,
            "assignedUserId": "rep",
            "users": ["rep", "helper"],
            "startTime": start,
            "endTime": start,
        },
    }


def reminders_at_ably(ably: AblyServer, location: str) -> list[tuple[str, str, str]]:
    status, messages = http("GET", f"http://{ably.address}/_standin/messages")
    assert status == 200, messages
    found = []
    for message in messages:
        data = json.loads(message["data"])  # published with encoding "json"
        if message["name"] == "appointment-reminder" and data["location_id"] == location:
            found.append((message["channel"], data["appointment_id"], data["start_time"]))
    return sorted(found)


async def test_reminders_once_per_start_time_across_a_restart(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    location = f"R{run}"
    env = webhook_env(kafka_bootstrap, ably_server) | {"STREAMS_REMINDER_LEAD_SECONDS": str(LEAD)}
    first: Worker | None = start_worker(env, tmp_path / "worker-1")
    second: Worker | None = None
    try:
        assert first is not None
        first.wait_healthy()
        derived_before = await derived_head(kafka_bootstrap)  # the worker created the topics
        soon, rescheduled, late = at(LEAD + 10), at(LEAD + 20), at(LEAD - 60)
        first_slot = at(LEAD + 15)
        for payload in [
            appointment(location, "a", soon),  # reminded once
            appointment(location, "b", soon),
            appointment(location, "b", soon, status="cancelled", kind="AppointmentUpdate"),
            appointment(location, "c", first_slot),
            appointment(location, "c", rescheduled, kind="AppointmentUpdate"),  # the new start
            appointment(location, "e", at(-10)),  # already past: never
            appointment(location, "f", late),  # due already, not started: reminded at once
        ]:
            assert post_webhook(first, payload)[0] == 200
        async with RawLog(kafka_bootstrap) as log:  # history: folded, never reminded of
            await log.append_event(appointment(location, "g", soon), source="import")

        expected = sorted(
            (channel, appointment_id, utc(start))
            for appointment_id, start in (("a", soon), ("c", rescheduled), ("f", late))
            for channel in ("user:rep", "user:helper")
        )
        assert wait_for(lambda: reminders_at_ably(ably_server, location) == expected, 60), (
            reminders_at_ably(ably_server, location)
        )
        status, upcoming = query(first, location, "appointments")
        assert status == 200, upcoming
        assert [a["appointment_id"] for a in upcoming["users"]["rep"]] == ["f", "a", "g", "c"]

        # One more, due right after the worker stops: the restarted worker, recovering its
        # tables from the changelogs into a fresh data directory, sends it (and only it).
        after_restart = at(LEAD + 8)
        assert post_webhook(first, appointment(location, "d", after_restart))[0] == 200
        assert wait_for(
            lambda: any(
                a["appointment_id"] == "d"
                for a in query(first, location, "appointments")[1]["users"].get("rep", [])
            )
        )
        first.stop()
        first = None
        second = start_worker(env, tmp_path / "worker-2")
        second.wait_healthy()
        expected_all = sorted(
            [*expected, *((c, "d", utc(after_restart)) for c in ("user:rep", "user:helper"))]
        )
        assert wait_for(lambda: reminders_at_ably(ably_server, location) == expected_all, 90), (
            reminders_at_ably(ably_server, location)
        )

        # All of them live in one location, so the tick that sent "d" looked at the others too:
        # had a sent record been lost in the restart, its repeat would be on the topic by now.
        sent = [
            (e["channel"], e["data"]["appointment_id"], e["data"]["start_time"], e["id"])
            for e in await derived_since(kafka_bootstrap, derived_before)
            if e["name"] == "appointment-reminder" and e["data"]["location_id"] == location
        ]
        assert sorted(s[:3] for s in sent) == expected_all
        assert len({s[3] for s in sent}) == len(sent)
        reminder = next(
            e
            for e in await derived_since(kafka_bootstrap, derived_before)
            if e["name"] == "appointment-reminder" and e["data"]["location_id"] == location
        )
        assert reminder["data"]["lead_seconds"] == LEAD
        assert reminder["data"]["users"] == ["rep", "helper"]
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
