"""Payments family: invoices fold into daily revenue; `payment-received`, `revenue-update`."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import Event
from streams.money import format_minor
from streams.tables import locations, revenue
from streams.tables.registry import Tables

__all__ = ["TYPES", "handler"]

TYPES = revenue.PAYMENT_TYPES | {"InvoiceVoid", locations.SETTINGS_TYPE}


def handler(tables: Tables) -> Any:
    daily_revenue = tables[revenue.DAILY_REVENUE]
    invoice_payments = tables[revenue.INVOICE_PAYMENTS]
    contacts = tables["contacts"]

    def handle(event: Event) -> list[dict[str, Any]]:
        if event.type == locations.SETTINGS_TYPE:
            location_id, timezone = locations.timezone_from(event)
            daily_revenue[location_id] = revenue.apply_timezone(
                daily_revenue.get(location_id), timezone
            )
            return []
        if event.type not in revenue.PAYMENT_TYPES:
            return []  # InvoiceVoid changes nothing
        payment = revenue.payment_from(event)
        key = revenue.invoice_key(payment)
        location, progress, recognised = revenue.apply_payment(
            daily_revenue.get(payment.location_id), invoice_payments.get(key), payment
        )
        if recognised is None:
            return []
        daily_revenue[payment.location_id] = location
        invoice_payments[key] = progress

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
        contact = contacts.get(payment.contact_id) if payment.contact_id else None
        if contact and contact["assigned_to"]:
            out.append(
                derived_event(
                    "payment-received", user_channel(contact["assigned_to"]), payment_data, event
                )
            )
        return out

    return handle
