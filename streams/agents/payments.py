"""Payments family: invoices fold into daily revenue; `payment-received`, `revenue-update`.

The other invoice events and the order events belong here too; no projection reads them yet, so
they only have to name their location and their invoice or order (`_id`), else they are
dead-lettered with the reason. Order amounts are not revenue: an order is paid by its invoice.
"""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import BadRecord, Event
from streams.money import format_minor
from streams.tables import contacts, revenue
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler"]

INVOICE_TYPES = frozenset(
    {
        "InvoiceCreate",
        "InvoiceUpdate",
        "InvoiceSent",
        "InvoicePaid",
        "InvoicePartiallyPaid",
        "InvoiceVoid",
        "InvoiceDelete",
    }
)
ORDER_TYPES = frozenset({"OrderCreate", "OrderStatusUpdate"})
TYPES = revenue.TYPES | INVOICE_TYPES | ORDER_TYPES


def _check_record(event: Event) -> None:
    if event.location_id is None:
        raise BadRecord(f"{event.type}: no locationId (nor altId with altType 'location')")
    record_id = event.body.get("_id") or event.body.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise BadRecord(f"{event.type}: no id (_id or id)")


def handler(tables: Tables) -> Any:
    contact_table = tables[contacts.CONTACTS]

    def handle(event: Event) -> list[dict[str, Any]]:
        if event.type not in revenue.TYPES:
            _check_record(event)
            return []
        change = revenue.update(tables, event)
        if change is None or not event.live:
            return []
        payment, recognised = change
        currency = recognised.currency
        payment_data = {
            "location_id": payment.location_id,
            "invoice_id": payment.invoice_id,
            "contact_id": payment.contact_id,
            "currency": currency,
            "amount": format_minor(recognised.minor, currency),
            "amount_paid": format_minor(recognised.invoice_total, currency),
            "date": recognised.date,
        }
        out = [
            derived_event(
                "payment-received", location_channel(payment.location_id), payment_data, event
            ),
            derived_event(
                "revenue-update",
                location_channel(payment.location_id),
                {
                    "location_id": payment.location_id,
                    "date": recognised.date,
                    "currency": currency,
                    "amount": format_minor(recognised.day_total, currency),
                },
                event,
            ),
        ]
        contact = contact_table.get(payment.contact_id) if payment.contact_id else None
        if contact and contact["assigned_to"]:
            out.append(
                derived_event(
                    "payment-received", user_channel(contact["assigned_to"]), payment_data, event
                )
            )
        return out

    return handle
