from __future__ import annotations

from typing import Any

import pytest

from streams.events import BadRecord
from streams.tables import quotes
from tests.unit.events import event


def quote(kind: str = "QuoteViewed", webhook_id: str | None = None, **fields: Any) -> Any:
    body = {
        "type": kind,
        "locationId": "loc-1",
        "quoteId": "q1",
        "quoteName": "Kitchen",
        "salesRepId": "rep",
        "contactId": "c1",
        "timestamp": "2026-03-02T10:00:00Z",
    }
    return event({**body, **fields}, webhook_id=webhook_id)


def fold(*events: Any) -> tuple[dict[str, dict[Any, Any]], list[Any]]:
    tables: dict[str, dict[Any, Any]] = {name: {} for name in quotes.FOLD.tables}
    return tables, [quotes.update(tables, e) for e in events]


def test_views_downloads_and_first_signature_each_count_once_per_record() -> None:
    viewed = quote(webhook_id="w1", timeOnPageSeconds=42.7)
    tables, changes = fold(
        viewed,
        viewed,  # the same record again
        quote(webhook_id="w2"),
        quote("QuoteDownloaded"),
        quote("QuoteSigned", timestamp="2026-03-03T10:00:00Z"),
        quote("QuoteSigned", timestamp="2026-03-04T10:00:00Z"),
    )
    assert changes[1] is None
    assert changes[0][0].time_on_page_seconds == 42
    assert tables[quotes.QUOTES]["loc-1"]["q1"] == {
        "sales_rep_id": "rep",
        "views": 2,
        "downloads": 1,
        "last_viewed_at": "2026-03-02T10:00:00Z",
        "signed_at": "2026-03-03T10:00:00Z",
    }


def test_the_sales_rep_may_be_named_user_id() -> None:
    assert quotes.quote_from(quote(salesRepId=None, userId="u9")).sales_rep_id == "u9"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [({"quoteId": None}, "quoteId"), ({"timeOnPageSeconds": "long"}, "timeOnPageSeconds")],
)
def test_unusable_quote_events_are_bad_records(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        quotes.quote_from(quote(**fields))


def test_the_quotes_query_lists_each_quotes_activity_and_reads_as_a_table() -> None:
    from streams.queries import quotes_answer
    from streams.query_table import render_table

    tables, _ = fold(
        quote(webhook_id="w1"),
        quote("QuoteSigned", webhook_id="w2", timestamp="2026-03-03T10:00:00Z"),
        quote(webhook_id="w3", quoteId="q2"),
    )
    answer = quotes_answer("loc-1", tables[quotes.QUOTES].get("loc-1"))
    assert answer["total"] == 2 and answer["signed"] == 1
    assert [(q["quote_id"], q["views"], q["signed_at"]) for q in answer["quotes"]] == [
        ("q1", 1, "2026-03-03T10:00:00Z"),
        ("q2", 1, None),
    ]
    assert quotes_answer("nowhere", None) == {
        "location_id": "nowhere",
        "total": 0,
        "signed": 0,
        "quotes": [],
    }
    shown = render_table("quotes", answer)
    assert "2, 1 signed" in shown and "q2" in shown and "{" not in shown
