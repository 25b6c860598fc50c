"""Live query answers, built from projection state (pure), shared by the HTTP API and the CLI.

Money as decimal strings, dates `YYYY-MM-DD`, zero rows omitted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from streams.money import format_minor
from streams.tables.contacts import Contact
from streams.tables.leads import LocationLeads
from streams.tables.revenue import LocationRevenue
from streams.tables.unread import UnreadByConversation

__all__ = ["QueryError", "leads_answer", "parse_range", "revenue_answer", "unread_answer"]


class QueryError(ValueError):
    """A query the caller got wrong (answered with 400 and this reason)."""


def parse_range(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    def parse(name: str, value: str | None) -> date | None:
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise QueryError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None

    first, last = parse("from", start), parse("to", end)
    if first and last and first > last:
        raise QueryError(f"from ({first}) is after to ({last})")
    return first, last


def _in_range(day: str, first: date | None, last: date | None) -> bool:
    return (first is None or day >= first.isoformat()) and (last is None or day <= last.isoformat())


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def revenue_answer(
    location_id: str, state: LocationRevenue | None, first: date | None, last: date | None
) -> dict[str, Any]:
    days: list[dict[str, str]] = []
    totals: dict[str, int] = {}
    for day, amounts in sorted((state or {"days": {}})["days"].items()):
        if not _in_range(day, first, last):
            continue
        for currency, minor in sorted(amounts.items()):
            if minor:
                days.append(
                    {"date": day, "currency": currency, "amount": format_minor(minor, currency)}
                )
                totals[currency] = totals.get(currency, 0) + minor
    return {
        "location_id": location_id,
        "from": _iso(first),
        "to": _iso(last),
        "days": days,
        "totals": {c: format_minor(m, c) for c, m in sorted(totals.items())},
    }


def unread_answer(
    location_id: str, state: UnreadByConversation | None, contact: Callable[[str], Contact | None]
) -> dict[str, Any]:
    conversations = {c: e["unread"] for c, e in sorted((state or {}).items()) if e["unread"]}
    users: dict[str, int] = {}
    for entry in (state or {}).values():
        assigned = contact(entry["contact"]) if entry["contact"] else None
        if assigned and assigned["assigned_to"] and entry["unread"]:
            users[assigned["assigned_to"]] = users.get(assigned["assigned_to"], 0) + entry["unread"]
    return {
        "location_id": location_id,
        "total": sum(conversations.values()),
        "conversations": conversations,
        "users": dict(sorted(users.items())),
    }


def leads_answer(
    location_id: str, state: LocationLeads | None, first: date | None, last: date | None
) -> dict[str, Any]:
    days = [
        {"date": d, "count": n}
        for d, n in sorted((state or {"days": {}})["days"].items())
        if n and _in_range(d, first, last)
    ]
    return {
        "location_id": location_id,
        "from": _iso(first),
        "to": _iso(last),
        "days": days,
        "total": sum(d["count"] for d in days),
    }
