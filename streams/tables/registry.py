"""Every projection table, created on the Faust app in one place.

All tables are co-partitioned with the raw topic (keyed by location), hold JSON values, and
live in the worker's RocksDB store with a compacted changelog topic.
"""

from __future__ import annotations

import faust
from faust.types import TableT

from streams.tables import contacts, leads, messages, revenue, unread

__all__ = ["TABLE_NAMES", "Tables", "create_tables"]

TABLE_NAMES = (
    revenue.DAILY_REVENUE,
    revenue.INVOICE_PAYMENTS,
    unread.CONVERSATIONS,
    unread.SEEN_MESSAGES,
    unread.UNREAD_BY_LOCATION,
    contacts.CONTACTS,
    leads.LEADS,
    leads.LEAD_CONTACTS,
    messages.NOTIFIED_MESSAGES,
)

Tables = dict[str, TableT]


def create_tables(app: faust.App, partitions: int) -> Tables:
    return {name: app.Table(name, default=None, partitions=partitions) for name in TABLE_NAMES}
