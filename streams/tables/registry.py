"""The projections this build knows, and the live worker's tables, in one place.

All tables are co-partitioned with the raw topic (keyed by location), hold JSON values, and
live in the worker's RocksDB store per partition with a compacted changelog topic
(`streams.runtime`).
"""

from __future__ import annotations

from streams.tables import (
    activity,
    appointments,
    contacts,
    email_stats,
    leads,
    location_registry,
    message_status,
    messages,
    pipeline,
    quotes,
    reminders,
    revenue,
    tasks,
    unread,
)
from streams.tables.projection import Projection

__all__ = ["LIVE_TABLES", "PROJECTIONS"]

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
    Projection("message_status", (message_status.FOLD,)),
    Projection("activity", (activity.FOLD,)),
)
# The live worker folds every live projection once, plus the state only its notifications need.
LIVE_TABLES = (
    *dict.fromkeys(t for p in PROJECTIONS if p.live for t in p.tables),
    messages.NOTIFIED_MESSAGES,
    reminders.REMINDERS,
)
