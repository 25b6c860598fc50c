"""E-mail statistics per (location, local date, event kind), from `LCEmailStats`.

`LCEmailStats` wraps a Mailgun-style event in `webhookPayload`: its `event` is the kind
(`delivered`, the only one documented; others are counted under their own name), its `id`
identifies the e-mail event (a redelivery counts once), and its `timestamp` is integer Unix
**seconds**, unlike every other time in the catalog; that is the event's time. The location's
timezone is part of this projection's state, applied in log order.

Tables: `email_stats` (location id -> LocationEmailStats) and `email_events`
("{location}/{e-mail event id}" -> True).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from streams.events import BadRecord, Event, event_time, local_date, within_calendar
from streams.tables import locations
from streams.tables.projection import Fold, Tables

__all__ = [
    "EMAIL_STATS_TYPE",
    "FOLD",
    "EmailEvent",
    "LocationEmailStats",
    "apply_email_event",
    "email_event_from",
    "update",
]

EMAIL_STATS = "email_stats"
EMAIL_EVENTS = "email_events"
EMAIL_STATS_TYPE = "LCEmailStats"
TYPES = frozenset({EMAIL_STATS_TYPE, locations.SETTINGS_TYPE})


class LocationEmailStats(TypedDict):
    timezone: str | None
    days: dict[str, dict[str, int]]  # "YYYY-MM-DD" -> event kind -> count


@dataclass(frozen=True, slots=True)
class EmailEvent:
    location_id: str
    event_id: str
    kind: str
    occurred_at: datetime

    @property
    def key(self) -> str:
        return f"{self.location_id}/{self.event_id}"


def email_event_from(event: Event) -> EmailEvent:
    location_id = event.location_id
    payload = event.body.get("webhookPayload")
    if location_id is None or not isinstance(payload, dict):
        raise BadRecord(f"{EMAIL_STATS_TYPE}: locationId and webhookPayload are required")
    kind = payload.get("event")
    if not isinstance(kind, str) or not kind:
        raise BadRecord(f"{EMAIL_STATS_TYPE}: webhookPayload.event is required")
    seconds = payload.get("timestamp")
    if seconds is None:
        occurred_at = event_time(event)
    elif isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        try:
            occurred_at = datetime.fromtimestamp(seconds, tz=UTC)
            if not within_calendar(occurred_at):
                raise ValueError
        except (OverflowError, OSError, ValueError):
            raise BadRecord(
                f"{EMAIL_STATS_TYPE}: webhookPayload.timestamp {seconds!r} is not a time"
            ) from None
    else:
        raise BadRecord(
            f"{EMAIL_STATS_TYPE}: webhookPayload.timestamp must be Unix seconds, got {seconds!r}"
        )
    event_id = payload.get("id")
    return EmailEvent(
        location_id=location_id,
        event_id=event_id if isinstance(event_id, str) and event_id else event.webhook_id,
        kind=kind,
        occurred_at=occurred_at,
    )


def apply_email_event(
    location: LocationEmailStats | None, seen: bool, email: EmailEvent
) -> tuple[LocationEmailStats, str | None]:
    """The location's statistics after `email`; the local date it counted on, or None."""
    location = location or {"timezone": None, "days": {}}
    if seen:
        return location, None
    day = local_date(email.occurred_at, location["timezone"]).isoformat()
    kinds = dict(location["days"].get(day, {}))
    kinds[email.kind] = kinds.get(email.kind, 0) + 1
    return {"timezone": location["timezone"], "days": {**location["days"], day: kinds}}, day


def apply_timezone(location: LocationEmailStats | None, timezone: str) -> LocationEmailStats:
    return {"timezone": timezone, "days": (location or {"days": {}})["days"]}


def update(tables: Tables, event: Event) -> tuple[EmailEvent, str, int] | None:
    """Fold `event` into the e-mail statistics; for a new e-mail event, it, the local date it
    counted on and that day's count of its kind."""
    stats = tables[EMAIL_STATS]
    if event.type == locations.SETTINGS_TYPE:
        location_id, timezone = locations.timezone_from(event)
        stats[location_id] = apply_timezone(stats.get(location_id), timezone)
        return None
    email = email_event_from(event)
    seen_table = tables[EMAIL_EVENTS]
    location, day = apply_email_event(
        stats.get(email.location_id), seen_table.get(email.key) is not None, email
    )
    if day is None:
        return None
    seen_table[email.key] = True
    stats[email.location_id] = location
    return email, day, location["days"][day][email.kind]


FOLD = Fold((EMAIL_STATS, EMAIL_EVENTS), TYPES, update, family="email_stats")
