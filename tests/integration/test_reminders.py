"""Appointment reminders against the real broker and the Ably stand-in, with the lead time set to
four minutes and appointments starting seconds after that: one reminder per appointment and
start time, none after a cancel, one new after a reschedule, none for appointments already past
or only imported; then, with a second worker sharing the partitions and after the first stops,
one reminder in every partition, sent by whichever worker owns it, and none sent twice (checked
on the derived topic, where a repeat would show even though Ably would drop it)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from streams.ingress.raw_log import RawLog
from streams.routing import partition_for
from tests.integration.processes import Worker, http, start_worker, wait_for
from tests.integration.services import TEST_PARTITIONS, AblyServer
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


def difference(seen: list[tuple[str, ...]], expected: list[tuple[str, ...]]) -> dict[str, Any]:
    return {
        "missing": sorted(set(expected) - set(seen)),
        "extra": sorted(set(seen) - set(expected)),
        "seen twice": sorted(r for r in set(seen) if seen.count(r) > 1),
    }


def reminders_at_ably(ably: AblyServer, locations: set[str]) -> list[tuple[str, ...]]:
    """(location, channel, appointment, start) of each reminder the stand-in holds for them."""
    status, messages = http("GET", f"http://{ably.address}/_standin/messages")
    assert status == 200, messages
    found = []
    for message in messages:
        data = json.loads(message["data"])  # published with encoding "json"
        if message["name"] == "appointment-reminder" and data["location_id"] in locations:
            found.append(
                (
                    data["location_id"],
                    message["channel"],
                    data["appointment_id"],
                    data["start_time"],
                )
            )
    return sorted(found)


def one_location_per_partition(location: str, run: str) -> list[str]:
    """`location` and more, so that every partition of the raw topic holds one of them."""
    chosen = {partition_for(location, TEST_PARTITIONS): location}
    for n in range(1000):
        candidate = f"R{run}-{n}"
        chosen.setdefault(partition_for(candidate, TEST_PARTITIONS), candidate)
        if len(chosen) == TEST_PARTITIONS:
            return [chosen[p] for p in range(TEST_PARTITIONS)]
    raise AssertionError("no location ids for every partition")


def reminded(locations: list[str], appointment_id: str, start: str) -> list[tuple[str, ...]]:
    return [
        (location, channel, appointment_id, utc(start))
        for location in locations
        for channel in ("user:rep", "user:helper")
    ]


async def test_reminders_once_per_start_time_across_workers_and_restarts(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    location = f"R{run}"
    everywhere = one_location_per_partition(location, run)
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
            [
                *reminded([location], "a", soon),
                *reminded([location], "c", rescheduled),
                *reminded([location], "f", late),
            ]
        )
        assert wait_for(lambda: reminders_at_ably(ably_server, {location}) == expected, 60), (
            reminders_at_ably(ably_server, {location})
        )
        status, upcoming = query(first, location, "appointments")
        assert status == 200, upcoming
        assert [a["appointment_id"] for a in upcoming["users"]["rep"]] == ["f", "a", "g", "c"]

        # A second worker joins: the partitions, their ticks and their tables split between the
        # two (the joiner recovers its share from the changelogs). A reminder in every partition
        # is sent once, by whichever worker owns it.
        second = start_worker(env, tmp_path / "worker-2")
        second.wait_healthy()
        first.wait_healthy()
        split = at(LEAD + 8)
        for place in everywhere:
            assert post_webhook(first, appointment(place, "d", split))[0] == 200
        expected += reminded(everywhere, "d", split)
        expected.sort()
        assert wait_for(lambda: reminders_at_ably(ably_server, set(everywhere)) == expected, 90), (
            difference(reminders_at_ably(ably_server, set(everywhere)), expected)
        )

        # The first stops; the second takes over every partition, recovering the rest of the
        # tables. One more reminder in every partition proves its ticks run everywhere; the
        # tick that sends it looks at every reminder of its partition, so had a sent record been
        # lost on the way, its repeat would be on the derived topic by then.
        first.stop()
        first = None
        second.wait_healthy()
        alone = at(LEAD + 8)
        for place in everywhere:
            assert post_webhook(second, appointment(place, "h", alone))[0] == 200
        expected += reminded(everywhere, "h", alone)
        expected.sort()
        assert wait_for(lambda: reminders_at_ably(ably_server, set(everywhere)) == expected, 90), (
            difference(reminders_at_ably(ably_server, set(everywhere)), expected)
        )

        # Ably drops a repeated id, so look where a repeat would show: the derived topic.
        events = [
            e
            for e in await derived_since(kafka_bootstrap, derived_before)
            if e["name"] == "appointment-reminder" and e["data"]["location_id"] in everywhere
        ]
        sent = sorted(
            (
                e["data"]["location_id"],
                e["channel"],
                e["data"]["appointment_id"],
                e["data"]["start_time"],
            )
            for e in events
        )
        assert sent == expected
        assert len({e["id"] for e in events}) == len(events)
        assert all(e["data"]["lead_seconds"] == LEAD for e in events)
        assert all(e["data"]["users"] == ["rep", "helper"] for e in events)
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
