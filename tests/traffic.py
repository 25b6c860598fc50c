"""Realistic HighLevel traffic for tests, and an independent reference of what the projections
must answer for it, written straight from DESIGN.md's semantics (not from streams.tables).

The mix: messages dominate, then contacts, invoices with partial payments in several currencies,
unread resets, location timezones, HighLevel's redeliveries (the same body twice) and broken lines.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from zoneinfo import ZoneInfo

EXPONENT = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}
TIMEZONES = ["America/New_York", "Asia/Tokyo", "Europe/Berlin", None, "Australia/Sydney"]


def generate(
    count: int, *, locations: int = 5, seed: int = 7, prefix: str = "loc", pipeline: bool = False
) -> list[dict[str, Any]]:
    """`count` webhook bodies (some repeated, as HighLevel redelivers), in log order.
    `pipeline` adds opportunities and appointments (about one body in ten), as production has;
    no projection here reads them yet, so `expected()` is the same with or without them."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    location_ids = [f"{prefix}{n}" for n in range(locations)]
    bodies: list[dict[str, Any]] = []
    for index, location in enumerate(location_ids):
        zone = TIMEZONES[index % len(TIMEZONES)]
        if zone:
            bodies.append(
                {
                    "type": "LocationSettingsUpdated",
                    "locationId": location,
                    "timezone": zone,
                    "timestamp": "2026-02-28T00:00:00Z",
                    "webhookId": f"{prefix}-settings-{index}",
                }
            )
    invoices: dict[str, tuple[str, str, Decimal]] = {}  # id -> (location, currency, paid)
    contacts: dict[str, list[str]] = defaultdict(list)
    messages = 0
    while len(bodies) < count:
        location = rng.choice(location_ids)
        at = (
            (start + timedelta(minutes=rng.randrange(0, 60 * 24 * 10)))
            .isoformat()
            .replace("+00:00", "Z")
        )
        roll = rng.random()
        if pipeline and rng.random() < 0.1:
            body = _pipeline_body(rng, location, at, prefix)
        elif roll < 0.50:
            messages += 1
            conversation = f"{location}-conv{rng.randrange(8)}"
            message_id = f"m{messages}" if rng.random() > 0.1 else f"m{max(1, messages - 1)}"
            body = {
                "type": "InboundMessage",
                "locationId": location,
                "conversationId": conversation,
                "messageId": message_id,
                "contactId": rng.choice(contacts[location]) if contacts[location] else None,
                "body": "Hi, call me at +1 555 010 9999",
                "messageType": "SMS",
                "dateAdded": at,
                "direction": "inbound",
            }
        elif roll < 0.58:
            body = {
                "type": "ConversationUnreadUpdate",
                "locationId": location,
                "id": f"{location}-conv{rng.randrange(8)}",
                "unreadCount": rng.randrange(3),
            }
        elif roll < 0.78:
            contact = f"{location}-c{rng.randrange(40)}"
            kind = (
                "ContactCreate"
                if contact not in contacts[location] or rng.random() < 0.1
                else "ContactUpdate"
            )
            contacts[location].append(contact)
            body = {
                "type": kind,
                "locationId": location,
                "id": contact,
                "assignedTo": f"{prefix}-user{rng.randrange(3)}",
                "email": f"{contact}@example.com",
                "phone": "+15550100000",
                "dateAdded": at,
            }
        else:
            invoice = f"{location}-inv{rng.randrange(30)}"
            _, currency, paid = invoices.get(
                invoice, (location, rng.choice(list(EXPONENT)), Decimal(0))
            )
            step = Decimal(rng.randrange(1, 50000)) / Decimal(10) ** rng.choice([0, 1, 2, 3])
            amount = paid + step if rng.random() > 0.15 else max(Decimal(0), paid - step)  # stale
            invoices[invoice] = (location, currency, max(paid, amount))
            status = "paid" if rng.random() < 0.3 else "partially_paid"
            body = {
                "_id": invoice,
                "status": status,
                "amountPaid": float(amount),
                "currency": currency,
                "altId": location,
                "altType": "location",
                "updatedAt": at,
                "contactDetails": {"id": f"{location}-c1"},
            }
        body["webhookId"] = f"{prefix}-wh-{len(bodies)}"
        bodies.append(body)
        if rng.random() < 0.05:
            bodies.append(body)  # a redelivery: the same webhook again
    return bodies[:count]


def _pipeline_body(rng: random.Random, location: str, at: str, prefix: str) -> dict[str, Any]:
    user = f"{prefix}-user{rng.randrange(3)}"
    if rng.random() < 0.6:
        return {
            "type": rng.choice(
                ["OpportunityCreate", "OpportunityStageUpdate", "OpportunityStatusUpdate"]
            ),
            "locationId": location,
            "id": f"{location}-opp{rng.randrange(60)}",
            "pipelineId": "p1",
            "pipelineStageId": f"stage{rng.randrange(5)}",
            "status": rng.choice(["open", "open", "open", "won", "lost"]),
            "monetaryValue": rng.randrange(100, 20000),
            "assignedTo": user,
            "dateAdded": at,
        }
    return {
        "type": rng.choice(["AppointmentCreate", "AppointmentUpdate"]),
        "locationId": location,
        "appointment": {
            "id": f"{location}-appt{rng.randrange(80)}",
            "assignedUserId": user,
            "startTime": at,
            "appointmentStatus": rng.choice(["confirmed", "confirmed", "cancelled"]),
        },
    }


def to_jsonl(bodies: list[dict[str, Any]], broken: int = 3) -> str:
    lines = [json.dumps(b) for b in bodies]
    for n in range(broken):
        lines.insert(len(lines) * (n + 1) // (broken + 1), ["{oops", "[1, 2]", "42"][n % 3])
    return "\n".join(lines) + "\n"


def expected(bodies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per location: revenue {(date, currency): minor}, unread {conversation: n}, leads {date: n}."""
    zones: dict[str, str] = {}
    revenue: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    highest: dict[str, int] = {}
    unread: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seen_messages: set[tuple[str, str]] = set()
    leads: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seen_contacts: set[str] = set()

    def local(location: str, stamp: str) -> str:
        moment = datetime.fromisoformat(stamp)
        return moment.astimezone(ZoneInfo(zones.get(location, "UTC"))).date().isoformat()

    for body in bodies:
        kind = body.get("type")
        if kind == "LocationSettingsUpdated":
            zones[body["locationId"]] = body["timezone"]
        elif kind is None and body["status"] in ("paid", "partially_paid"):
            currency = body["currency"]
            quantum = Decimal(1).scaleb(-EXPONENT[currency])
            try:
                amount = Decimal(str(body["amountPaid"]))
            except ArithmeticError:
                continue  # dead-lettered by the payments family
            paid = amount.quantize(quantum, rounding=ROUND_HALF_EVEN)
            minor = int(paid.scaleb(EXPONENT[currency]))
            before = highest.get(body["_id"], 0)
            if minor > before:
                revenue[body["altId"]][(local(body["altId"], body["updatedAt"]), currency)] += (
                    minor - before
                )
                highest[body["_id"]] = minor
        elif kind == "InboundMessage":
            key = (body["conversationId"], body["messageId"])
            if key not in seen_messages:
                seen_messages.add(key)
                unread[body["locationId"]][body["conversationId"]] += 1
        elif kind == "ConversationUnreadUpdate":
            unread[body["locationId"]][body["id"]] = body["unreadCount"]
        elif kind == "ContactCreate" and body["id"] not in seen_contacts:
            seen_contacts.add(body["id"])
            leads[body["locationId"]][local(body["locationId"], body["dateAdded"])] += 1
    locations = set(revenue) | set(unread) | set(leads)
    return {
        loc: {
            "revenue": {k: v for k, v in revenue[loc].items() if v},
            "unread": {k: v for k, v in unread[loc].items() if v},
            "leads": {k: v for k, v in leads[loc].items() if v},
        }
        for loc in locations
    }


def format_minor(minor: int, currency: str) -> str:
    exponent = EXPONENT[currency]
    return str(Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


# The activity feed as documented: the newest 100 entries of a location and 50 of a contact, by
# event time then entry id; an entry is one (time, id), its id the webhook id, a message's
# `message:{messageId}`.
FEED_LOCATION, FEED_CONTACT = 100, 50
STATE_NOTIFICATIONS = frozenset({"unread-changed", "revenue-update"})


def location_notifications(bodies: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """How many derived events of each name a subscriber of each location channel must see for
    live `bodies` (DESIGN.md's table): `new-message` per inbound message seen for the first time,
    `unread-changed` per change of a conversation's count, `lead-alert` per new contact,
    `payment-received` and `revenue-update` per payment that adds revenue, `activity` per entry
    that enters a feed. Under Ably's per-channel rate the publisher may conflate state events
    (`STATE_NOTIFICATIONS`): their counts are then the most a subscriber can see."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    unread: dict[str, int] = defaultdict(int)
    seen_messages: set[tuple[str, str]] = set()
    seen_contacts: set[str] = set()
    highest: dict[str, int] = {}
    feeds: dict[Any, list[tuple[str, str]]] = defaultdict(list)  # newest first: (time, id)
    for body in bodies:
        kind = body.get("type")
        channel = f"location:{body.get('locationId') or body.get('altId')}"
        if _feed_entry(feeds, body):
            counts["activity", channel] += 1
        if kind is None and body["status"] in ("paid", "partially_paid"):
            try:
                amount = Decimal(str(body["amountPaid"]))
            except ArithmeticError:
                continue  # dead-lettered by the payments family
            quantum = Decimal(1).scaleb(-EXPONENT[body["currency"]])
            paid = amount.quantize(quantum, rounding=ROUND_HALF_EVEN)
            minor = int(paid.scaleb(EXPONENT[body["currency"]]))
            if minor > highest.get(body["_id"], 0):
                highest[body["_id"]] = minor
                counts["payment-received", channel] += 1
                counts["revenue-update", channel] += 1
            continue
        if kind == "InboundMessage":
            key = (body["conversationId"], body["messageId"])
            if key not in seen_messages:
                seen_messages.add(key)
                unread[body["conversationId"]] += 1
                counts["new-message", channel] += 1
                counts["unread-changed", channel] += 1
        elif kind == "ConversationUnreadUpdate":
            if unread[body["id"]] != body["unreadCount"]:
                unread[body["id"]] = body["unreadCount"]
                counts["unread-changed", channel] += 1
        elif kind == "ContactCreate" and body["id"] not in seen_contacts:
            seen_contacts.add(body["id"])
            counts["lead-alert", channel] += 1
    return dict(counts)


def _feed_entry(feeds: dict[Any, list[tuple[str, str]]], body: dict[str, Any]) -> bool:
    """Fold `body` into the modelled feeds; whether it entered one (an `activity` event)."""
    kind = body.get("type") or {
        "paid": "InvoicePaid",
        "partially_paid": "InvoicePartiallyPaid",
    }.get(body.get("status", ""))
    if kind in ("InboundMessage", "OutboundMessage"):
        entry_id, contact = f"message:{body['messageId']}", body.get("contactId")
    elif kind in ("ContactCreate", "ContactUpdate"):
        entry_id, contact = body["webhookId"], body["id"]
    elif kind in ("InvoicePaid", "InvoicePartiallyPaid"):
        entry_id, contact = body["webhookId"], (body.get("contactDetails") or {}).get("id")
    else:
        return False  # no activity (this traffic has no other activity types)
    stamp = body.get("timestamp") or body.get("updatedAt") or body.get("dateAdded")
    # Without a time of its own an entry takes its arrival at the ingress: newer than all here.
    at = datetime.fromisoformat(stamp).astimezone(UTC).isoformat() if stamp else "9999"
    location = body.get("locationId") or body.get("altId")
    entered = False
    chosen: list[tuple[Any, int]] = [(location, FEED_LOCATION)]
    if contact:
        chosen.append(((location, contact), FEED_CONTACT))
    for feed, keep in chosen:
        entries = feeds[feed]
        if (at, entry_id) in entries:
            continue
        entries = sorted([*entries, (at, entry_id)], reverse=True)[:keep]
        feeds[feed] = entries
        entered = entered or (at, entry_id) in entries
    return entered
