"""The projections this build knows, and the live worker's tables, in one place.

All tables are co-partitioned with the raw topic (keyed by location), hold JSON values, and
live in the worker's RocksDB store with a compacted changelog topic.
"""

from __future__ import annotations

from collections.abc import Iterable

import faust
from faust.types import TableT

from streams.tables import (
    appointments,
    contacts,
    email_stats,
    leads,
    location_registry,
    messages,
    pipeline,
    positions,
    quotes,
    reminders,
    revenue,
    tasks,
    unread,
)
from streams.tables.projection import Projection

__all__ = ["LIVE_TABLES", "PROJECTIONS", "changelog_topic", "create_tables"]

PROJECTIONS = (
    Projection("revenue", (revenue.FOLD,)),
    Projection("unread", (contacts.FOLD, unread.FOLD)),
    Projection("leads", (leads.FOLD,)),
    Projection("pipeline", (pipeline.FOLD,)),
    Projection("appointments", (appointments.FOLD,)),
    Projection("tasks", (tasks.FOLD,)),
    Projection("email_stats", (email_stats.FOLD,)),
    Projection("quotes", (quotes.FOLD,)),
    Projection("registry", (location_registry.FOLD,)),
)
# The live worker folds every live projection once, plus the state only its notifications need.
LIVE_TABLES = (
    *dict.fromkeys(t for p in PROJECTIONS if p.live for t in p.tables),
    messages.NOTIFIED_MESSAGES,
    positions.POSITIONS,
    reminders.REMINDERS,
)


def create_tables(app: faust.App, names: Iterable[str], partitions: int) -> dict[str, TableT]:
    return {name: app.Table(name, default=None, partitions=partitions) for name in names}


def changelog_topic(app_id: str, table: str) -> str:
    """The changelog topic Faust gives `table` in the app `app_id`."""
    return f"{app_id}-{table}-changelog"
