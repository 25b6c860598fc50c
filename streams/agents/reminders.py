"""`appointment-reminder`: sent at a wall-clock time, exactly once as the subscriber sees it.

A Faust table can only be written while processing a record, into that record's partition
(the RocksDB store and the changelog both take the partition from the current event), and the
reminders of a location live in the location's partition of the raw topic. So a timer cannot
fire reminders itself. Instead, Kafka Streams' punctuation, made of records:

1. Every `TICK_SECONDS` each worker's timer sends an empty tick to each partition of
   `streams.reminder-ticks.v1` it owns. That topic has as many partitions as the raw topic, so
   Faust's assignor gives tick partition p to the worker that owns raw partition p and the
   `appointment_reminders` rows of its locations.
2. The reminder agent, processing a tick of partition p, takes the due reminders of the locations
   in p (`reminders.fire`), and commits them as sent in the table (so in the changelog of
   partition p, durable and moving with the partition on a rebalance) together with their
   derived events, all or nothing (`streams.agents.effects`).
3. A reminder's derived-event id is a digest of (location, appointment, start time, channel), not
   of the tick, so every attempt to send it carries the same id.

Exactly once from the subscriber's view: a reminder is sent if and only if it is recorded as
sent, so a restart or rebalance finds it in the recovered table and never sends it again.
Ticks carry nothing and may be lost or repeated; a missed tick only delays a reminder to the
next one. An appointment that started while no worker was running gets no reminder at all: a
late one is worse than none.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from streams import metrics
from streams.agents.effects import Effects
from streams.agents.family import bytes_topic, stop_without_committing
from streams.agents.staged import Staged
from streams.derived import derived_event, user_channel
from streams.events import Event, parse_time
from streams.routing import partition_for
from streams.settings import Settings
from streams.tables import location_registry, reminders
from streams.tables.projection import Tables
from streams.topics import RAW_WEBHOOKS, REMINDER_TICKS

__all__ = ["TICK_SECONDS", "appointment_reminder_data", "due_reminders", "install_reminders"]

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
REMINDER_EVENT = "appointment-reminder"
FIRED_FROM = (reminders.REMINDERS, location_registry.LOCATION_REGISTRY)  # the tables it reads


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


def install_reminders(app: faust.App, tables: Tables, settings: Settings, effects: Effects) -> None:
    ticks = bytes_topic(app, REMINDER_TICKS.name)
    lead = timedelta(seconds=settings.reminder_lead_seconds)

    async def tick() -> None:
        for tp in app.assignor.assigned_actives():
            if tp.topic == REMINDER_TICKS.name:
                await ticks.send(value=b"", partition=tp.partition)

    app.timer(TICK_SECONDS, name="streams.reminders.tick")(tick)

    async def reminder_agent(stream: faust.StreamT) -> None:
        async for record in stream.events():
            message = record.message
            partitions = app.consumer.topic_partitions(RAW_WEBHOOKS.name) or settings.partitions
            staged = {name: Staged(tables[name]) for name in FIRED_FROM}
            for table in staged.values():
                table.origin = record
            async with effects.lock:
                try:
                    await effects.recover([record])
                except Exception as exc:
                    stop_without_committing(f"tick {message.partition}:{message.offset}", exc)
                try:
                    derived = due_reminders(
                        staged, message.partition, partitions, datetime.now(UTC), lead, message
                    )
                except Exception:
                    # Ticks are disposable: the next one tries again; the agent must not die.
                    log.exception("reminders: tick %s:%s failed", message.partition, message.offset)
                    continue
                try:
                    await effects.commit(staged, {message.partition: derived})
                except Exception as exc:
                    stop_without_committing(f"tick {message.partition}:{message.offset}", exc)
            for item in derived:
                metrics.count("streams_derived_events_total", name=item["name"])

    app.agent(ticks, name="streams.agents.reminders")(reminder_agent)
