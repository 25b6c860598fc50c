"""Live query answers, built from projection state (pure), shared by the HTTP API and the CLI.

Money as decimal strings, dates `YYYY-MM-DD`, zero rows omitted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from streams.errors import StreamsError
from streams.events import iso_z, local_date, parse_time
from streams.money import format_minor
from streams.tables.activity import Entry
from streams.tables.appointments import Booking
from streams.tables.contacts import Contact
from streams.tables.email_stats import LocationEmailStats
from streams.tables.leads import LocationLeads
from streams.tables.location_registry import RegisteredLocation, empty, notifies
from streams.tables.pipeline import NO_CURRENCY, LocationPipeline
from streams.tables.quotes import QuoteActivity
from streams.tables.revenue import LocationRevenue
from streams.tables.tasks import OpenTask
from streams.tables.unread import UnreadByConversation

__all__ = [
    "DASHBOARD_DAYS",
    "KINDS",
    "QueryError",
    "activity_answer",
    "appointment_entry",
    "appointments_answer",
    "dashboard_answer",
    "email_stats_answer",
    "leads_answer",
    "parse_range",
    "pipeline_answer",
    "quotes_answer",
    "registry_answer",
    "revenue_answer",
    "tasks_answer",
    "unread_answer",
]

# The query kinds: the last segment of a query's path, each named after its projection
# (`GET /v1/locations/{location_id}/{kind}`); `streams.api.QUERIES` answers each.
KINDS = (
    "revenue",
    "unread",
    "leads",
    "pipeline",
    "appointments",
    "tasks",
    "email_stats",
    "quotes",
    "registry",
    "activity",
)


class QueryError(StreamsError, ValueError):
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


def pipeline_answer(
    location_id: str, state: LocationPipeline | None, first: date | None, last: date | None
) -> dict[str, Any]:
    """Open opportunities per (pipeline, stage) now; won value per day within the range."""
    state = state or {"timezone": None, "stages": {}, "won": {}}

    def value(hundredths: int) -> str:
        return format_minor(hundredths, NO_CURRENCY)

    stages = [
        {
            "pipeline_id": pipeline_id,
            "stage_id": stage_id,
            "open_count": totals["open"],
            "open_value": value(totals["value"]),
        }
        for pipeline_id, by_stage in sorted(state["stages"].items())
        for stage_id, totals in sorted(by_stage.items())
        if totals["open"]
    ]
    won = [
        (day, hundredths)
        for day, hundredths in sorted(state["won"].items())
        if hundredths and _in_range(day, first, last)
    ]
    return {
        "location_id": location_id,
        "from": _iso(first),
        "to": _iso(last),
        "stages": stages,
        "open_count": sum(s["open"] for p in state["stages"].values() for s in p.values()),
        "open_value": value(sum(s["value"] for p in state["stages"].values() for s in p.values())),
        "won": [{"date": day, "value": value(hundredths)} for day, hundredths in won],
        "won_total": value(sum(hundredths for _, hundredths in won)),
    }


def appointment_entry(appointment_id: str, booking: Booking) -> dict[str, Any]:
    """One appointment as the answers and the read models show it."""
    return {
        "appointment_id": appointment_id,
        "start_time": booking["start_time"],
        "end_time": booking["end_time"],
        "title": booking["title"],
        "status": booking["status"],
        "contact_id": booking["contact_id"],
        "calendar_id": booking["calendar_id"],
    }


def appointments_answer(
    location_id: str, state: dict[str, Booking] | None, now: datetime
) -> dict[str, Any]:
    """Appointments not yet started at `now`, per user (assigned user and other users), by start."""
    users: dict[str, list[dict[str, Any]]] = {}
    upcoming = sorted(
        (
            (booking["start_time"], appointment_id, booking)
            for appointment_id, booking in (state or {}).items()
            if (parse_time(booking["start_time"]) or now) > now
        ),
    )
    for _, appointment_id, booking in upcoming:
        entry = appointment_entry(appointment_id, booking)
        for user in booking["users"]:
            users.setdefault(user, []).append(entry)
    return {
        "location_id": location_id,
        "as_of": iso_z(now),
        "total": len(upcoming),
        "users": dict(sorted(users.items())),
    }


def tasks_answer(location_id: str, state: dict[str, OpenTask] | None) -> dict[str, Any]:
    """Open tasks per assignee (tasks nobody is assigned to under `unassigned`)."""
    assignees: dict[str, list[dict[str, Any]]] = {}
    unassigned: list[dict[str, Any]] = []
    for task_id, task in sorted((state or {}).items()):
        entry = {
            "task_id": task_id,
            "title": task["title"],
            "due_date": task["due_date"],
            "contact_id": task["contact_id"],
        }
        if task["assigned_to"]:
            assignees.setdefault(task["assigned_to"], []).append(entry)
        else:
            unassigned.append(entry)
    return {
        "location_id": location_id,
        "total": len(state or {}),
        "assignees": dict(sorted(assignees.items())),
        "unassigned": unassigned,
    }


def email_stats_answer(
    location_id: str, state: LocationEmailStats | None, first: date | None, last: date | None
) -> dict[str, Any]:
    days = [
        {"date": day, "event": kind, "count": count}
        for day, kinds in sorted((state or {"days": {}})["days"].items())
        if _in_range(day, first, last)
        for kind, count in sorted(kinds.items())
        if count
    ]
    totals: dict[str, int] = {}
    for day, kinds in (state or {"days": {}})["days"].items():
        if _in_range(day, first, last):
            for kind, count in kinds.items():
                totals[kind] = totals.get(kind, 0) + count
    return {
        "location_id": location_id,
        "from": _iso(first),
        "to": _iso(last),
        "days": days,
        "totals": dict(sorted(totals.items())),
    }


def quotes_answer(location_id: str, state: dict[str, QuoteActivity] | None) -> dict[str, Any]:
    """Each quote's activity (views, downloads, last view, when signed), by quote id."""
    quotes = [
        {"quote_id": quote_id, **activity} for quote_id, activity in sorted((state or {}).items())
    ]
    return {
        "location_id": location_id,
        "total": len(quotes),
        "signed": sum(1 for q in quotes if q["signed_at"]),
        "quotes": quotes,
    }


def registry_answer(location_id: str, entry: RegisteredLocation | None) -> dict[str, Any]:
    """The location's registry entry; `notifies` says whether its channels get derived events."""
    return {"location_id": location_id, **(entry or empty()), "notifies": notifies(entry)}


def activity_answer(
    location_id: str, contact_id: str | None, entries: list[Entry] | None
) -> dict[str, Any]:
    """The location's (or one of its contacts') recent activity, newest first."""
    return {
        "location_id": location_id,
        "contact_id": contact_id,
        "entries": list(reversed(entries or [])),  # kept oldest first
    }


DASHBOARD_DAYS = 30  # the revenue chart's days, today included
DASHBOARD_APPOINTMENTS = 5
DASHBOARD_ACTIVITY = 10


def dashboard_answer(
    location_id: str,
    revenue: LocationRevenue | None,
    leads: LocationLeads | None,
    pipeline: LocationPipeline | None,
    unread: UnreadByConversation | None,
    appointments: dict[str, Booking] | None,
    tasks: dict[str, OpenTask] | None,
    activity: list[Entry] | None,
    now: datetime,
) -> dict[str, Any]:
    """The location's day at a glance (the dashboard's first paint; its events keep it live):
    today is the location's local date."""
    timezone = next((s["timezone"] for s in (revenue, leads, pipeline) if s), None)
    today = local_date(now, timezone)
    first = today - timedelta(days=DASHBOARD_DAYS - 1)
    days = revenue_answer(location_id, revenue, first, today)["days"]
    won = pipeline["won"].get(today.isoformat(), 0) if pipeline else 0
    upcoming = sorted(
        (booking["start_time"], appointment_id, booking)
        for appointment_id, booking in (appointments or {}).items()
        if (parse_time(booking["start_time"]) or now) > now
    )[:DASHBOARD_APPOINTMENTS]
    return {
        "location_id": location_id,
        "timezone": timezone,
        "today": today.isoformat(),
        "revenue_today": {
            d["currency"]: d["amount"] for d in days if d["date"] == today.isoformat()
        },
        "revenue_days": days,
        "leads_today": leads["days"].get(today.isoformat(), 0) if leads else 0,
        "won_today": format_minor(won, NO_CURRENCY),
        "unread": sum(entry["unread"] for entry in (unread or {}).values()),
        "appointments": [appointment_entry(a, b) for _, a, b in upcoming],
        "open_tasks": len(tasks or {}),
        "activity": list(reversed(activity or []))[:DASHBOARD_ACTIVITY],  # newest first
    }
