"""First-party events family: quote activity; `quote-viewed` to the quote's sales rep.

(`LocationSettingsUpdated`, the other first-party event, is folded by every projection that
needs a location's timezone, each into its own state, and by the location registry.)
"""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, user_channel
from streams.events import Event, iso_z
from streams.tables import quotes
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler", "quote_viewed_data"]

TYPES = quotes.QUOTE_TYPES


def quote_viewed_data(quote: quotes.QuoteEvent, activity: quotes.QuoteActivity) -> dict[str, Any]:
    return {
        "location_id": quote.location_id,
        "quote_id": quote.quote_id,
        "quote_name": quote.quote_name,
        "contact_id": quote.contact_id,
        "sales_rep_id": quote.sales_rep_id,
        "viewed_at": iso_z(quote.occurred_at),
        "time_on_page_seconds": quote.time_on_page_seconds,
        "views": activity["views"],
    }


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        result = quotes.update(tables, event)
        if result is None or not event.live:
            return []
        quote, activity = result
        if quote.kind != quotes.VIEWED or quote.sales_rep_id is None:
            return []
        return [
            derived_event(
                "quote-viewed",
                user_channel(quote.sales_rep_id),
                quote_viewed_data(quote, activity),
                event,
            )
        ]

    return handle
