"""Quote activity per location, from first-party `QuoteViewed`, `QuoteSigned`, `QuoteDownloaded`.

These are the project's own events (other services put them on the raw log), shaped
`{"type", "locationId", "quoteId", "salesRepId" (else "userId"), "contactId", "quoteName",
"timeOnPageSeconds" (QuoteViewed, when the viewer's page sent it), "timestamp"}`. Each quote
counts its views and downloads and keeps when it was first signed; a record seen again (same
webhook id) counts once.

Tables: `quotes` (location id -> {quote id: QuoteActivity}) and `quote_events`
("{location}/{webhook id}" -> True).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypedDict

from streams.events import BadRecord, Event, event_time, iso_z
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "QUOTE_TYPES",
    "QuoteActivity",
    "QuoteEvent",
    "apply_quote_event",
    "quote_from",
    "update",
]

QUOTES = "quotes"
QUOTE_EVENTS = "quote_events"
VIEWED, SIGNED, DOWNLOADED = "QuoteViewed", "QuoteSigned", "QuoteDownloaded"
QUOTE_TYPES = frozenset({VIEWED, SIGNED, DOWNLOADED})


class QuoteActivity(TypedDict):
    sales_rep_id: str | None
    views: int
    downloads: int
    last_viewed_at: str | None
    signed_at: str | None


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    kind: str
    location_id: str
    quote_id: str
    quote_name: str | None
    sales_rep_id: str | None
    contact_id: str | None
    time_on_page_seconds: int | None
    occurred_at: datetime
    webhook_id: str

    @property
    def seen_key(self) -> str:
        return f"{self.location_id}/{self.webhook_id}"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def quote_from(event: Event) -> QuoteEvent:
    body = event.body
    location_id, quote_id = event.location_id, _text(body.get("quoteId"))
    if location_id is None or quote_id is None:
        raise BadRecord(f"{event.type}: locationId and quoteId are required")
    seconds = body.get("timeOnPageSeconds")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise BadRecord(
                f"{event.type}: timeOnPageSeconds must be a number >= 0, got {seconds!r}"
            )
        seconds = int(Decimal(str(seconds)))  # whole seconds are what the app shows
    return QuoteEvent(
        kind=event.type,
        location_id=location_id,
        quote_id=quote_id,
        quote_name=_text(body.get("quoteName")),
        sales_rep_id=_text(body.get("salesRepId")) or _text(body.get("userId")),
        contact_id=_text(body.get("contactId")),
        time_on_page_seconds=seconds,
        occurred_at=event_time(event),
        webhook_id=event.webhook_id,
    )


def apply_quote_event(
    activity: QuoteActivity | None, seen: bool, quote: QuoteEvent
) -> QuoteActivity | None:
    """The quote's activity after `quote`; None when it changes nothing (seen before)."""
    if seen:
        return None
    current: QuoteActivity = activity or {
        "sales_rep_id": None,
        "views": 0,
        "downloads": 0,
        "last_viewed_at": None,
        "signed_at": None,
    }
    at = iso_z(quote.occurred_at)
    updated: QuoteActivity = {
        **current,
        "sales_rep_id": quote.sales_rep_id or current["sales_rep_id"],
    }
    if quote.kind == VIEWED:
        updated["views"] += 1
        updated["last_viewed_at"] = at
    elif quote.kind == DOWNLOADED:
        updated["downloads"] += 1
    elif current["signed_at"] is None:
        updated["signed_at"] = at
    return updated


def update(tables: Tables, event: Event) -> tuple[QuoteEvent, QuoteActivity] | None:
    """Fold `event` into the quote tables; the event and the quote's activity after it, unless
    it was seen before."""
    quote = quote_from(event)
    quotes, seen = tables[QUOTES], tables[QUOTE_EVENTS]
    location = dict(quotes.get(quote.location_id) or {})
    activity = apply_quote_event(
        location.get(quote.quote_id), seen.get(quote.seen_key) is not None, quote
    )
    if activity is None:
        return None
    seen[quote.seen_key] = True
    location[quote.quote_id] = activity
    quotes[quote.location_id] = location
    return quote, activity


FOLD = Fold((QUOTES, QUOTE_EVENTS), QUOTE_TYPES, update, family="first_party")
