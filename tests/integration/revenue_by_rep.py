"""A projection this project does not have, defined only here: revenue per sales rep.

Run as a program, this is the `streams` command of a build that adds it to the catalog, so the
replay test can compute it over all history the way an operator would after a deploy.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from decimal import Decimal
from typing import Any

from streams.cli import main
from streams.events import Event
from streams.money import minor_units
from streams.tables import contacts, revenue
from streams.tables.projection import Fold, Projection, Tables
from streams.tables.registry import PROJECTIONS

REP_REVENUE = "rep_revenue"  # location id -> {rep: {currency: minor}}
REP_INVOICES = "rep_invoices"  # "{location}/{invoice}" -> highest minor amount recognised
UNASSIGNED = "unassigned"


def update(tables: Tables, event: Event) -> None:
    """Revenue credited to the rep the paying contact is assigned to when the payment arrives."""
    payment = revenue.payment_from(event)
    key = revenue.invoice_key(payment)
    paid = minor_units(payment.amount_paid, payment.currency)
    highest = tables[REP_INVOICES].get(key) or 0
    if paid <= highest:
        return
    tables[REP_INVOICES][key] = paid
    contact = tables[contacts.CONTACTS].get(payment.contact_id) if payment.contact_id else None
    rep = (contact or {}).get("assigned_to") or UNASSIGNED
    location = dict(tables[REP_REVENUE].get(payment.location_id) or {})
    totals = dict(location.get(rep, {}))
    totals[payment.currency] = totals.get(payment.currency, 0) + paid - highest
    location[rep] = totals
    tables[REP_REVENUE][payment.location_id] = location


REVENUE_BY_REP = Projection(
    "revenue_by_rep",
    (contacts.FOLD, Fold((REP_REVENUE, REP_INVOICES), revenue.PAYMENT_TYPES, update)),
    live=False,
)
CATALOG = (*PROJECTIONS, REVENUE_BY_REP)


def expected_by_rep(bodies: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """The same, computed directly from the webhook bodies in log order (the test's reference)."""
    assigned: dict[str, str | None] = {}
    highest: dict[str, int] = {}
    result: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for body in bodies:
        kind = body.get("type")
        if kind in ("ContactCreate", "ContactUpdate"):
            assigned[body["id"]] = body.get("assignedTo") or assigned.get(body["id"])
        elif kind is None and body.get("status") in ("paid", "partially_paid"):
            currency = body["currency"]
            minor = minor_units(Decimal(str(body["amountPaid"])), currency)
            before = highest.get(body["_id"], 0)
            if minor > before:
                highest[body["_id"]] = minor
                rep = assigned.get(body["contactDetails"]["id"]) or UNASSIGNED
                totals = result[body["altId"]][rep]
                totals[currency] = totals.get(currency, 0) + minor - before
    return {location: dict(reps) for location, reps in result.items()}


if __name__ == "__main__":
    sys.exit(main(catalog=CATALOG))
