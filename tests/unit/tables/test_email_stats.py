from __future__ import annotations

from typing import Any

import pytest

from streams.events import BadRecord
from streams.tables import email_stats
from tests.unit.events import event


def stats(
    event_id: str = "ev-1", kind: str = "delivered", seconds: Any = 1772409600, **extra: Any
) -> Any:
    # The documented shape: a Mailgun-style event whose timestamp is integer Unix seconds.
    return event(
        {
            "type": "LCEmailStats",
            "locationId": "loc-1",
            "companyId": "co-1",
            "webhookPayload": {
                "event": kind,
                "id": event_id,
                "timestamp": seconds,  # 2026-03-02T00:00:00Z
                "recipient": "ann@example.com",
                "tags": ["loc_loc-1", "com_co-1", "et_other"],
                "message": {"headers": {"message-id": "<x@mg.example.com>"}},
                **extra,
            },
        }
    )


def fold(*events: Any) -> tuple[dict[str, dict[Any, Any]], list[Any]]:
    tables: dict[str, dict[Any, Any]] = {name: {} for name in email_stats.FOLD.tables}
    return tables, [email_stats.update(tables, e) for e in events]


def test_counts_per_local_day_and_kind_from_epoch_seconds() -> None:
    tables, changes = fold(stats(), stats("ev-2"), stats("ev-3", kind="opened"), stats("ev-1"))
    assert tables[email_stats.EMAIL_STATS]["loc-1"]["days"] == {
        "2026-03-02": {"delivered": 2, "opened": 1}
    }
    assert changes[1][1:] == ("2026-03-02", 2)
    assert changes[3] is None  # the same e-mail event redelivered


def test_the_location_timezone_decides_the_day() -> None:
    tz = event(
        {"type": "LocationSettingsUpdated", "locationId": "loc-1", "timezone": "America/Chicago"}
    )
    tables, _ = fold(tz, stats())
    assert tables[email_stats.EMAIL_STATS]["loc-1"]["days"] == {"2026-03-01": {"delivered": 1}}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"type": "LCEmailStats", "locationId": "loc-1"}, "webhookPayload"),
        (
            {"type": "LCEmailStats", "companyId": "co-1", "webhookPayload": {"event": "x"}},
            "locationId",
        ),
        ({"type": "LCEmailStats", "locationId": "loc-1", "webhookPayload": {"id": "e"}}, "event"),
        (
            {
                "type": "LCEmailStats",
                "locationId": "loc-1",
                "webhookPayload": {"event": "x", "timestamp": "2026-03-02"},
            },
            "Unix seconds",
        ),
    ],
)
def test_unusable_statistics_are_bad_records(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        email_stats.email_event_from(event(body))
