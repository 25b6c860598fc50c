"""Pipeline per (location, pipeline, stage): open opportunities' count and value; won value per day.

Every Opportunity* event carries the opportunity's full state, so each one replaces what is known
of it (log order; an event with an envelope `timestamp` older than the one already applied is a
late redelivery and changes nothing). An open opportunity counts in its stage with its
`monetaryValue`; any other status (won, lost, abandoned, deleted) counts nowhere. The first time an
opportunity's status is `won` its value is added to the won value of the event's local date; winning
it again after reopening adds nothing. `OpportunityDelete` is final. HighLevel sends
`OpportunityUpdate` and the specific event for one change (different webhook ids): the second
carries the same state and changes nothing.

Opportunities carry no currency (it is a location setting), so values are kept in hundredths
(minor units of ISO 4217 "XXX", no currency) and answered as decimal strings.

Tables: `opportunities` ("{location}/{opportunity}" -> OpportunityState) and `pipelines`
(location id -> LocationPipeline, with the location's timezone, applied in log order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from streams.events import BadRecord, Event, event_time, local_date, parse_time
from streams.money import MoneyError, decimal_amount, minor_units
from streams.tables import locations
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "OPPORTUNITY_TYPES",
    "Change",
    "LocationPipeline",
    "Opportunity",
    "OpportunityState",
    "apply_opportunity",
    "opportunity_from",
    "update",
]

OPPORTUNITIES = "opportunities"
PIPELINES = "pipelines"
OPPORTUNITY_TYPES = frozenset(
    {
        "OpportunityCreate",
        "OpportunityUpdate",
        "OpportunityDelete",
        "OpportunityStatusUpdate",
        "OpportunityStageUpdate",
        "OpportunityMonetaryValueUpdate",
        "OpportunityAssignedToUpdate",
    }
)
TYPES = OPPORTUNITY_TYPES | {locations.SETTINGS_TYPE}
STATUSES = frozenset({"open", "won", "lost", "abandoned"})
DELETED = "deleted"
NO_CURRENCY = "XXX"  # ISO 4217 "no currency": two decimal places


class OpportunityState(TypedDict):
    pipeline_id: str | None
    stage_id: str | None
    status: str  # open | won | lost | abandoned | deleted
    value: int  # hundredths
    assigned_to: str | None
    contact_id: str | None
    name: str | None
    won: bool  # its won value has been counted
    as_of: str | None  # envelope timestamp of the event applied last, when it had one


class StageTotals(TypedDict):
    open: int
    value: int


class LocationPipeline(TypedDict):
    timezone: str | None
    stages: dict[str, dict[str, StageTotals]]  # pipeline id -> stage id -> open totals
    won: dict[str, int]  # "YYYY-MM-DD" -> hundredths first won that day


@dataclass(frozen=True, slots=True)
class Opportunity:
    location_id: str
    opportunity_id: str
    status: str
    pipeline_id: str | None
    stage_id: str | None
    value: int | None  # None: not in the payload
    assigned_to: str | None
    assignment_sent: bool  # False: `assignedTo` absent, the assignment stays as it was
    contact_id: str | None
    name: str | None
    occurred_at: datetime
    stamped: datetime | None  # the envelope `timestamp`, when sent

    @property
    def key(self) -> str:
        return f"{self.location_id}/{self.opportunity_id}"

    @property
    def stamped_iso(self) -> str | None:
        return self.stamped.isoformat() if self.stamped else None


@dataclass(frozen=True, slots=True)
class Change:
    """What an event changed: the state before (None: first seen) and after; the won value it
    added on `won_date` (bringing that day to `won_day_total`), if it was first won."""

    previous: OpportunityState | None
    current: OpportunityState
    won_date: str | None
    won_day_total: int


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def opportunity_from(event: Event) -> Opportunity:
    body = event.body
    location_id, opportunity_id = event.location_id, _text(body.get("id"))
    if location_id is None or opportunity_id is None:
        raise BadRecord(f"{event.type}: locationId and id (the opportunity id) are required")
    status = DELETED if event.type == "OpportunityDelete" else body.get("status", "open")
    if not isinstance(status, str) or (status not in STATUSES and status != DELETED):
        raise BadRecord(f"{event.type}: status must be one of {sorted(STATUSES)}, got {status!r}")
    value = None
    if body.get("monetaryValue") is not None:
        try:
            amount = decimal_amount(body["monetaryValue"])
        except MoneyError as exc:
            raise BadRecord(f"{event.type}: monetaryValue: {exc}") from None
        if amount < 0:
            raise BadRecord(f"{event.type}: monetaryValue is negative ({amount})")
        value = minor_units(amount, NO_CURRENCY)
    assigned = body.get("assignedTo")
    if assigned is not None and not isinstance(assigned, str):
        raise BadRecord(f"{event.type}: assignedTo must be a user id string, got {assigned!r}")
    return Opportunity(
        location_id=location_id,
        opportunity_id=opportunity_id,
        status=status,
        pipeline_id=_text(body.get("pipelineId")),
        stage_id=_text(body.get("pipelineStageId")),
        value=value,
        assigned_to=assigned or None,
        assignment_sent="assignedTo" in body,
        contact_id=_text(body.get("contactId")),
        name=_text(body.get("name")),
        occurred_at=event_time(event),
        stamped=parse_time(body.get("timestamp")),
    )


def empty_location() -> LocationPipeline:
    return {"timezone": None, "stages": {}, "won": {}}


def _count(location: LocationPipeline, state: OpportunityState, sign: int) -> LocationPipeline:
    """`location` with `state` added to (sign 1) or taken from (sign -1) its stage, if open."""
    if state["status"] != "open" or state["pipeline_id"] is None or state["stage_id"] is None:
        return location
    pipeline_id, stage_id = state["pipeline_id"], state["stage_id"]
    stages = dict(location["stages"].get(pipeline_id, {}))
    totals = stages.get(stage_id, {"open": 0, "value": 0})
    updated: StageTotals = {
        "open": totals["open"] + sign,
        "value": totals["value"] + sign * state["value"],
    }
    if updated["open"] <= 0:
        stages.pop(stage_id, None)
    else:
        stages[stage_id] = updated
    pipelines = {**location["stages"], pipeline_id: stages}
    if not stages:
        del pipelines[pipeline_id]
    return {**location, "stages": pipelines}


def _kept(previous: OpportunityState | None, field: str) -> str | None:
    """A field the payload left out keeps its known value (payloads are sometimes partial)."""
    value = previous.get(field) if previous else None
    return value if isinstance(value, str) else None


def _newer(opportunity: Opportunity, previous: OpportunityState) -> bool:
    as_of = parse_time(previous["as_of"])
    return opportunity.stamped is not None and (as_of is None or opportunity.stamped > as_of)


def apply_opportunity(
    location: LocationPipeline | None, previous: OpportunityState | None, opportunity: Opportunity
) -> tuple[LocationPipeline, Change | None]:
    """The location's pipeline after `opportunity`, and the change (None when nothing changed)."""
    location = location or empty_location()
    if previous is not None:
        if previous["status"] == DELETED:
            return location, None  # deletion is final: a late event must not bring it back
        as_of = parse_time(previous["as_of"])
        if opportunity.stamped and as_of and opportunity.stamped < as_of:
            return location, None  # a late redelivery of an older state
    if opportunity.status == "open" and (
        (opportunity.pipeline_id or _kept(previous, "pipeline_id")) is None
        or (opportunity.stage_id or _kept(previous, "stage_id")) is None
    ):
        raise BadRecord("an open opportunity needs pipelineId and pipelineStageId")
    first_won = opportunity.status == "won" and not (previous and previous["won"])
    current: OpportunityState = {
        "pipeline_id": opportunity.pipeline_id or _kept(previous, "pipeline_id"),
        "stage_id": opportunity.stage_id or _kept(previous, "stage_id"),
        "status": opportunity.status,
        "value": opportunity.value
        if opportunity.value is not None
        else (previous["value"] if previous else 0),
        "assigned_to": opportunity.assigned_to
        if opportunity.assignment_sent
        else _kept(previous, "assigned_to"),
        "contact_id": opportunity.contact_id or _kept(previous, "contact_id"),
        "name": opportunity.name or _kept(previous, "name"),
        "won": bool(previous and previous["won"]) or first_won,
        "as_of": opportunity.stamped_iso or _kept(previous, "as_of"),
    }
    if previous is not None and {**previous, "as_of": None} == {**current, "as_of": None}:
        return location, None
    if previous is not None:
        location = _count(location, previous, -1)
    location = _count(location, current, 1)
    won_date, won_day_total = None, 0
    if first_won:
        won_date = local_date(opportunity.occurred_at, location["timezone"]).isoformat()
        won_day_total = location["won"].get(won_date, 0) + current["value"]
        location = {**location, "won": {**location["won"], won_date: won_day_total}}
    return location, Change(previous, current, won_date, won_day_total)


def apply_timezone(location: LocationPipeline | None, timezone: str) -> LocationPipeline:
    return {**(location or empty_location()), "timezone": timezone}


def update(tables: Tables, event: Event) -> tuple[Opportunity, Change] | None:
    """Fold `event` into the pipeline tables; the opportunity and what changed, if anything."""
    pipelines = tables[PIPELINES]
    if event.type == locations.SETTINGS_TYPE:
        location_id, timezone = locations.timezone_from(event)
        pipelines[location_id] = apply_timezone(pipelines.get(location_id), timezone)
        return None
    opportunity = opportunity_from(event)
    opportunities = tables[OPPORTUNITIES]
    previous = opportunities.get(opportunity.key)
    location, change = apply_opportunity(
        pipelines.get(opportunity.location_id), previous, opportunity
    )
    if change is None:
        if previous and previous["status"] != DELETED and _newer(opportunity, previous):
            # The same state, sent later: what is known is now that recent.
            opportunities[opportunity.key] = {**previous, "as_of": opportunity.stamped_iso}
        return None
    opportunities[opportunity.key] = change.current
    pipelines[opportunity.location_id] = location
    return opportunity, change


FOLD = Fold((OPPORTUNITIES, PIPELINES), TYPES, update, family="opportunities")
