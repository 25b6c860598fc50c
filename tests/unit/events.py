"""Builders of Events for unit tests, from the documented payload shapes."""

from __future__ import annotations

import itertools
from typing import Any

from streams.events import Event, event_type

_offsets = itertools.count()


def event(
    body: dict[str, Any],
    *,
    source: str = "live",
    webhook_id: str | None = None,
    received_at: int = 1_700_000_000_000,
) -> Event:
    offset = next(_offsets)
    return Event(
        type=event_type(body),
        body=body,
        webhook_id=webhook_id or f"wh-{offset}",
        received_at=received_at,
        source=source,
        partition=0,
        offset=offset,
    )


def invoice(
    status: str,
    amount_paid: Any,
    *,
    invoice_id: str = "inv-1",
    currency: str = "USD",
    location: str = "loc-1",
    at: str = "2026-03-01T12:00:00.000Z",
    **extra: Any,
) -> Event:
    return event(
        {
            "_id": invoice_id,
            "status": status,
            "amountPaid": amount_paid,
            "currency": currency,
            "altId": location,
            "altType": "location",
            "updatedAt": at,
            "total": 999,
            "contactDetails": {"id": "contact-1", "email": "a@example.com"},
            **extra,
        }
    )
