"""E-mail statistics family: `LCEmailStats` counted per location, day and kind; `email-event`."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel
from streams.events import Event, iso_z
from streams.tables import email_stats
from streams.tables.projection import Tables

__all__ = ["TYPES", "email_event_data", "handler"]

TYPES = email_stats.TYPES


def email_event_data(email: email_stats.EmailEvent, day: str, day_count: int) -> dict[str, Any]:
    # No recipient, sender or SMTP Message-ID: this goes to the whole location.
    return {
        "location_id": email.location_id,
        "email_event_id": email.event_id,
        "event": email.kind,
        "occurred_at": iso_z(email.occurred_at),
        "date": day,
        "count_today": day_count,
    }


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        counted = email_stats.update(tables, event)
        if counted is None or not event.live:
            return []
        email, day, day_count = counted
        return [
            derived_event(
                "email-event",
                location_channel(email.location_id),
                email_event_data(email, day, day_count),
                event,
            )
        ]

    return handle
