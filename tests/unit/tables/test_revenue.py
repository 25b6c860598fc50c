from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from streams.events import BadRecord
from streams.tables.revenue import (
    InvoiceProgress,
    LocationRevenue,
    apply_payment,
    apply_timezone,
    invoice_key,
    payment_from,
)
from tests.unit.events import event, invoice


def fold(events: list, location: LocationRevenue | None = None) -> tuple[LocationRevenue, dict]:
    invoices: dict[str, InvoiceProgress] = {}
    for e in events:
        payment = payment_from(e)
        key = invoice_key(payment)
        location, invoices[key], _ = apply_payment(location, invoices.get(key), payment)
    assert location is not None
    return location, invoices


def test_invoice_fields_follow_the_documented_shape() -> None:
    payment = payment_from(invoice("paid", 899.1))
    assert (payment.location_id, payment.invoice_id, payment.currency) == ("loc-1", "inv-1", "USD")
    assert payment.amount_paid == Decimal("899.1")  # the decimal as written, not the float
    assert payment.contact_id == "contact-1"
    with_location = payment_from(
        event(
            {
                "type": "InvoicePaid",
                "id": "inv-9",
                "locationId": "L",
                "currency": "usd",
                "amountPaid": 5,
            }
        )
    )
    assert (with_location.location_id, with_location.invoice_id, with_location.currency) == (
        "L",
        "inv-9",
        "USD",
    )


def test_partial_payments_add_the_difference_and_days_sum_to_the_final_amount() -> None:
    location, invoices = fold(
        [
            invoice("partially_paid", 100.10, at="2026-03-01T10:00:00Z"),
            invoice("partially_paid", 300.25, at="2026-03-02T10:00:00Z"),
            invoice("paid", 999.99, at="2026-03-03T10:00:00Z"),
        ]
    )
    assert location["days"] == {
        "2026-03-01": {"USD": 10010},
        "2026-03-02": {"USD": 20015},
        "2026-03-03": {"USD": 69974},
    }
    assert sum(d["USD"] for d in location["days"].values()) == 99999
    assert invoices["loc-1/inv-1"] == {"currency": "USD", "minor": 99999}


def test_redeliveries_and_stale_lower_amounts_add_nothing() -> None:
    paid = invoice("paid", 500, at="2026-03-05T10:00:00Z")
    location, _ = fold(
        [
            invoice("partially_paid", 200, at="2026-03-01T10:00:00Z"),
            paid,
            paid,  # HighLevel retries: the same delivery twice
            invoice("partially_paid", 200, at="2026-03-06T10:00:00Z"),  # arrives late, lower
            invoice("partially_paid", 499.99, at="2026-03-07T10:00:00Z"),
        ]
    )
    assert location["days"] == {"2026-03-01": {"USD": 20000}, "2026-03-05": {"USD": 30000}}


def test_stale_event_reports_nothing_recognised() -> None:
    first = payment_from(invoice("paid", 10))
    location, progress, recognised = apply_payment(None, None, first)
    assert recognised is not None and recognised.minor == 1000 and recognised.day_total == 1000
    again = apply_payment(location, progress, payment_from(invoice("partially_paid", 5)))
    assert again == (location, progress, None)


@pytest.mark.parametrize(
    ("currency", "amount", "minor"),
    [
        ("USD", "12.345", 1234),  # half-even: 1234.5 -> 1234
        ("USD", "12.355", 1236),  # 1235.5 -> 1236
        ("EUR", 0.1, 10),
        ("JPY", 1500, 1500),  # exponent 0
        ("JPY", "1500.5", 1500),
        ("KRW", 9999, 9999),
        ("KWD", "1.2345", 1234),  # exponent 3
        ("BHD", "0.0015", 2),
    ],
)
def test_currency_exponents_and_half_even_rounding(
    currency: str, amount: object, minor: int
) -> None:
    location, _ = fold([invoice("paid", amount, currency=currency)])
    assert location["days"] == {"2026-03-01": {currency: minor}}


def test_several_currencies_and_invoices_on_one_day_are_kept_apart() -> None:
    location, _ = fold(
        [
            invoice("paid", 10, invoice_id="a", currency="USD"),
            invoice("paid", 20, invoice_id="b", currency="USD"),
            invoice("paid", 300, invoice_id="c", currency="JPY"),
        ]
    )
    assert location["days"] == {"2026-03-01": {"USD": 3000, "JPY": 300}}


def test_local_date_uses_the_location_timezone_across_midnight() -> None:
    late_utc = "2026-03-02T03:30:00Z"  # still March 1st in New York, March 2nd in UTC
    in_utc, _ = fold([invoice("paid", 1, at=late_utc)])
    assert list(in_utc["days"]) == ["2026-03-02"]
    new_york = apply_timezone(None, "America/New_York")
    in_ny, _ = fold([invoice("paid", 1, at=late_utc)], new_york)
    assert list(in_ny["days"]) == ["2026-03-01"]
    tokyo = apply_timezone(None, "Asia/Tokyo")
    in_tokyo, _ = fold([invoice("paid", 1, at="2026-03-01T15:30:00Z")], tokyo)
    assert list(in_tokyo["days"]) == ["2026-03-02"]


def test_offsets_in_timestamps_are_honoured() -> None:
    location, _ = fold([invoice("paid", 1, at="2026-03-01T23:30:00-05:00")])
    assert list(location["days"]) == ["2026-03-02"]


def test_event_time_prefers_timestamp_then_updated_at_then_date_added_then_received_at() -> None:
    body = {
        "type": "InvoicePaid",
        "_id": "i",
        "locationId": "L",
        "currency": "USD",
        "amountPaid": 1,
        "dateAdded": "2026-01-03T00:00:00Z",
    }
    assert list(fold([event(body)])[0]["days"]) == ["2026-01-03"]
    assert list(fold([event({**body, "updatedAt": "2026-01-02T00:00:00Z"})])[0]["days"]) == [
        "2026-01-02"
    ]
    assert list(
        fold(
            [
                event(
                    {
                        **body,
                        "updatedAt": "2026-01-02T00:00:00Z",
                        "timestamp": "2026-01-01T00:00:00Z",
                    }
                )
            ]
        )[0]["days"]
    ) == ["2026-01-01"]
    bare = {k: v for k, v in body.items() if k != "dateAdded"}
    # 1_700_000_000_000 ms is 2023-11-14T22:13:20Z
    assert list(fold([event(bare)])[0]["days"]) == ["2023-11-14"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amountPaid": "ten"}, "amountPaid"),
        ({"amountPaid": None}, "amountPaid"),
        ({"amountPaid": True}, "amountPaid"),
        ({"amountPaid": -5}, "negative"),
        ({"currency": 840}, "currency"),
        ({"currency": "DOLLARS"}, "currency"),
        ({"_id": None}, "invoice id"),
        ({"altId": None}, "locationId"),
    ],
)
def test_malformed_fields_are_bad_records_with_a_reason(change: dict, reason: str) -> None:
    e = invoice("paid", 10)
    broken = dataclasses.replace(e, body={**e.body, **change})
    with pytest.raises(BadRecord, match=reason):
        payment_from(broken)


def test_an_invoice_that_changes_currency_is_a_bad_record() -> None:
    location, progress, _ = apply_payment(None, None, payment_from(invoice("paid", 10)))
    with pytest.raises(BadRecord, match="currency"):
        apply_payment(location, progress, payment_from(invoice("paid", 20, currency="EUR")))
