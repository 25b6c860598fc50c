"""The MongoDB read models: each projection's state as documents, one per key, by pure functions.

A read model is a collection of one projection, computed per location from that location's rows
of the projection's tables (the same rows its HTTP query reads). Money is integer minor units with
its currency, beside the decimal string the HTTP answers give; never a float. Dates are
`YYYY-MM-DD` in the location's timezone, as in the answers. The sink adds its bookkeeping fields
(`_partition`, `_offset`: the changelog position the document reflects) when it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.money import format_minor
from streams.queries import appointment_entry, unread_answer
from streams.tables import appointments, contacts, leads, pipeline, revenue, unread
from streams.tables.projection import Tables

__all__ = [
    "READ_MODELS",
    "SINKABLE",
    "ReadModel",
    "affected_locations",
    "check_projections",
    "doc_id",
    "models_of",
]

Documents = dict[str, dict[str, Any]]  # _id -> document (without the sink's bookkeeping)


@dataclass(frozen=True)
class ReadModel:
    collection: str  # the alias; each version writes `{collection}_v{version}`
    projection: str
    index: tuple[str, ...]  # the backend's query: location first
    documents: Callable[[Tables, str], Documents]

    def versioned(self, version: int) -> str:
        return f"{self.collection}_v{version}"


def doc_id(*parts: str) -> str:
    """A document's id: its key's parts joined (HighLevel ids hold no '|')."""
    return "|".join(parts)


def revenue_days(tables: Tables, location_id: str) -> Documents:
    state = tables[revenue.DAILY_REVENUE].get(location_id) or {"days": {}}
    return {
        doc_id(location_id, day, currency): {
            "location_id": location_id,
            "date": day,
            "currency": currency,
            "amount_minor": minor,
            "amount": format_minor(minor, currency),
        }
        for day, amounts in state["days"].items()
        for currency, minor in amounts.items()
        if minor
    }


def unread_conversations(tables: Tables, location_id: str) -> Documents:
    state = tables[unread.UNREAD_BY_LOCATION].get(location_id) or {}
    return {
        doc_id(location_id, conversation_id): {
            "location_id": location_id,
            "conversation_id": conversation_id,
            "contact_id": entry["contact"],
            "unread": entry["unread"],
        }
        for conversation_id, entry in state.items()
        if entry["unread"]
    }


def unread_locations(tables: Tables, location_id: str) -> Documents:
    state = tables[unread.UNREAD_BY_LOCATION].get(location_id)
    if state is None:
        return {}
    answer = unread_answer(location_id, state, tables[contacts.CONTACTS].get)
    return {
        location_id: {
            "location_id": location_id,
            "total": answer["total"],
            "users": answer["users"],
        }
    }


def leads_days(tables: Tables, location_id: str) -> Documents:
    state = tables[leads.LEADS].get(location_id) or {"days": {}}
    return {
        doc_id(location_id, day): {"location_id": location_id, "date": day, "count": count}
        for day, count in state["days"].items()
        if count
    }


def _hundredths(value: int) -> dict[str, Any]:
    # HighLevel gives an opportunity's value without a currency: hundredths of the location's.
    return {"value_minor": value, "value": format_minor(value, pipeline.NO_CURRENCY)}


def pipeline_stages(tables: Tables, location_id: str) -> Documents:
    state = tables[pipeline.PIPELINES].get(location_id) or {"stages": {}}
    return {
        doc_id(location_id, pipeline_id, stage_id): {
            "location_id": location_id,
            "pipeline_id": pipeline_id,
            "stage_id": stage_id,
            "open_count": totals["open"],
            **{f"open_{k}": v for k, v in _hundredths(totals["value"]).items()},
        }
        for pipeline_id, by_stage in state["stages"].items()
        for stage_id, totals in by_stage.items()
        if totals["open"]
    }


def pipeline_won_days(tables: Tables, location_id: str) -> Documents:
    state = tables[pipeline.PIPELINES].get(location_id) or {"won": {}}
    return {
        doc_id(location_id, day): {"location_id": location_id, "date": day, **_hundredths(value)}
        for day, value in state["won"].items()
        if value
    }


def appointments_booked(tables: Tables, location_id: str) -> Documents:
    """Every appointment the projection keeps (until a day after its end); the upcoming ones are
    those with `starts_at` after now, which is the reader's clock, not the sink's."""
    state = tables[appointments.APPOINTMENTS].get(location_id) or {}
    return {
        doc_id(location_id, appointment_id): {
            "location_id": location_id,
            **appointment_entry(appointment_id, booking),
            "starts_at": datetime.fromisoformat(booking["start_time"]),
            "users": booking["users"],
        }
        for appointment_id, booking in state.items()
    }


READ_MODELS = (
    ReadModel("revenue_days", "revenue", ("location_id", "date"), revenue_days),
    ReadModel(
        "unread_conversations",
        "unread",
        ("location_id", "conversation_id"),
        unread_conversations,
    ),
    ReadModel("unread_locations", "unread", ("location_id",), unread_locations),
    ReadModel("leads_days", "leads", ("location_id", "date"), leads_days),
    ReadModel("pipeline_stages", "pipeline", ("location_id", "pipeline_id"), pipeline_stages),
    ReadModel("pipeline_won_days", "pipeline", ("location_id", "date"), pipeline_won_days),
    ReadModel("appointments", "appointments", ("location_id", "starts_at"), appointments_booked),
)

# Tables whose keys are location ids: a change to a row changes that location's documents.
_BY_LOCATION = {
    revenue.DAILY_REVENUE,
    unread.UNREAD_BY_LOCATION,
    leads.LEADS,
    pipeline.PIPELINES,
    appointments.APPOINTMENTS,
}


SINKABLE = ("revenue", "unread", "leads", "pipeline", "appointments")  # those with read models


def check_projections(names: Iterable[str]) -> None:
    unknown = [p for p in names if p not in SINKABLE]
    if unknown:
        raise ValueError(
            f"no read model for {', '.join(unknown)}; the sink writes {', '.join(SINKABLE)}"
        )


def models_of(projections: Iterable[str]) -> tuple[ReadModel, ...]:
    chosen = set(projections)
    return tuple(m for m in READ_MODELS if m.projection in chosen)


def affected_locations(table: str, key: Any, values: Iterable[Any]) -> set[str]:
    """The locations whose documents a change of `table[key]` can change; `values` are the row's
    values before and after (None when absent). A contact's assignment changes its location's
    unread per user."""
    if table in _BY_LOCATION:
        return {key}
    if table == contacts.CONTACTS:
        return {v["location"] for v in values if isinstance(v, Mapping) and "location" in v}
    return set()


def tables_of(projections: Iterable[str]) -> frozenset[str]:
    """The tables the read models of `projections` are computed from."""
    read = {
        "revenue": {revenue.DAILY_REVENUE},
        "unread": {unread.UNREAD_BY_LOCATION, contacts.CONTACTS},
        "leads": {leads.LEADS},
        "pipeline": {pipeline.PIPELINES},
        "appointments": {appointments.APPOINTMENTS},
    }
    return frozenset(t for p in projections for t in read.get(p, ()))
