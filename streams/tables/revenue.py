"""Daily revenue per (location, local date, currency), in integer minor units.

Source: `InvoicePaid` and `InvoicePartiallyPaid`. `amountPaid` is the invoice's cumulative paid
amount: an event above the highest amount already recognised for the invoice adds the difference
(in minor units) on the event's local date, so an invoice's days always sum to
`minor(final amountPaid)`. Redeliveries and stale (lower) amounts add nothing; `InvoiceVoid` changes
nothing. The location's timezone is part of this projection's state, set in log order by
`LocationSettingsUpdated`, so a replay reproduces every local date.

Tables: `daily_revenue` (location id -> LocationRevenue) and `invoice_payments`
("{location}/{invoice}" -> InvoiceProgress).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, TypedDict

from streams.events import BadRecord, Event, event_time, local_date
from streams.money import MoneyError, decimal_amount, minor_units
from streams.tables import locations
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "PAYMENT_TYPES",
    "InvoiceProgress",
    "LocationRevenue",
    "Payment",
    "Recognised",
    "apply_payment",
    "invoice_key",
    "payment_from",
    "update",
]

DAILY_REVENUE = "daily_revenue"
INVOICE_PAYMENTS = "invoice_payments"
PAYMENT_TYPES = frozenset({"InvoicePaid", "InvoicePartiallyPaid"})
TYPES = PAYMENT_TYPES | {"InvoiceVoid", locations.SETTINGS_TYPE}


class LocationRevenue(TypedDict):
    timezone: str | None
    days: dict[str, dict[str, int]]  # "YYYY-MM-DD" -> currency -> minor units


class InvoiceProgress(TypedDict):
    currency: str
    minor: int  # highest cumulative amount recognised so far


class Payment(NamedTuple):
    location_id: str
    invoice_id: str
    currency: str
    amount_paid: Decimal
    occurred_at: datetime
    contact_id: str | None


class Recognised(NamedTuple):
    """Revenue an event added: `minor` on `date`, bringing that day to `day_total`."""

    date: str
    currency: str
    minor: int
    day_total: int
    invoice_total: int


def empty_location() -> LocationRevenue:
    return {"timezone": None, "days": {}}


def invoice_key(payment: Payment) -> str:
    return f"{payment.location_id}/{payment.invoice_id}"


def payment_from(event: Event) -> Payment:
    body = event.body
    location_id = event.location_id
    if location_id is None:
        raise BadRecord(f"{event.type}: no locationId (nor altId with altType 'location')")
    invoice_id = body.get("_id") or body.get("id")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise BadRecord(f"{event.type}: no invoice id (_id or id)")
    currency = body.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise BadRecord(f"{event.type}: currency must be an ISO 4217 code, got {currency!r}")
    if "amountPaid" not in body:
        raise BadRecord(f"{event.type}: no amountPaid")
    try:
        amount = decimal_amount(body["amountPaid"])
    except MoneyError as exc:
        raise BadRecord(f"{event.type}: amountPaid: {exc}") from None
    if amount < 0:
        raise BadRecord(f"{event.type}: amountPaid is negative ({amount})")
    contact = body.get("contactDetails")
    contact_id = contact.get("id") if isinstance(contact, dict) else body.get("contactId")
    return Payment(
        location_id=location_id,
        invoice_id=invoice_id,
        currency=currency.upper(),
        amount_paid=amount,
        occurred_at=event_time(event),
        contact_id=contact_id if isinstance(contact_id, str) and contact_id else None,
    )


def apply_payment(
    location: LocationRevenue | None, invoice: InvoiceProgress | None, payment: Payment
) -> tuple[LocationRevenue, InvoiceProgress, Recognised | None]:
    """Recognise `payment` against the invoice's progress; None when it adds nothing."""
    location = location or empty_location()
    paid = minor_units(payment.amount_paid, payment.currency)
    if invoice is not None and invoice["currency"] != payment.currency:
        raise BadRecord(
            f"invoice {payment.invoice_id} changed currency from {invoice['currency']} "
            f"to {payment.currency}"
        )
    highest = invoice["minor"] if invoice else 0
    if paid <= highest:
        return location, invoice or {"currency": payment.currency, "minor": 0}, None
    added = paid - highest
    day = local_date(payment.occurred_at, location["timezone"]).isoformat()
    totals = dict(location["days"].get(day, {}))
    totals[payment.currency] = totals.get(payment.currency, 0) + added
    days = {**location["days"], day: totals}
    recognised = Recognised(day, payment.currency, added, totals[payment.currency], paid)
    return (
        {"timezone": location["timezone"], "days": days},
        {"currency": payment.currency, "minor": paid},
        recognised,
    )


def apply_timezone(location: LocationRevenue | None, timezone: str) -> LocationRevenue:
    location = location or empty_location()
    return {"timezone": timezone, "days": location["days"]}


def update(tables: Tables, event: Event) -> tuple[Payment, Recognised] | None:
    """Fold `event` into the revenue tables; the payment and what it recognised, if anything."""
    daily_revenue, invoice_payments = tables[DAILY_REVENUE], tables[INVOICE_PAYMENTS]
    if event.type == locations.SETTINGS_TYPE:
        location_id, timezone = locations.timezone_from(event)
        daily_revenue[location_id] = apply_timezone(daily_revenue.get(location_id), timezone)
        return None
    if event.type not in PAYMENT_TYPES:
        return None  # InvoiceVoid changes nothing
    payment = payment_from(event)
    key = invoice_key(payment)
    location, progress, recognised = apply_payment(
        daily_revenue.get(payment.location_id), invoice_payments.get(key), payment
    )
    if recognised is None:
        return None
    daily_revenue[payment.location_id] = location
    invoice_payments[key] = progress
    return payment, recognised


FOLD = Fold((DAILY_REVENUE, INVOICE_PAYMENTS), TYPES, update, family="payments")
