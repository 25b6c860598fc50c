"""Opportunities family: the pipeline projection; `project-update` and `project-won`."""

from __future__ import annotations

from typing import Any

from streams.derived import derived_event, location_channel, user_channel
from streams.events import Event
from streams.money import format_minor
from streams.tables import pipeline
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler", "project_update_data", "project_won_data"]

TYPES = pipeline.TYPES


def _value(hundredths: int) -> str:
    return format_minor(hundredths, pipeline.NO_CURRENCY)


def project_update_data(
    opportunity: pipeline.Opportunity, change: pipeline.Change
) -> dict[str, Any]:
    current, previous = change.current, change.previous
    return {
        "location_id": opportunity.location_id,
        "opportunity_id": opportunity.opportunity_id,
        "name": current["name"],
        "pipeline_id": current["pipeline_id"],
        "stage_id": current["stage_id"],
        "status": current["status"],
        "monetary_value": _value(current["value"]),
        "contact_id": current["contact_id"],
        "assigned_to": current["assigned_to"],
        "previous_stage_id": previous["stage_id"] if previous else None,
        "previous_status": previous["status"] if previous else None,
    }


def project_won_data(opportunity: pipeline.Opportunity, change: pipeline.Change) -> dict[str, Any]:
    current = change.current
    return {
        "location_id": opportunity.location_id,
        "opportunity_id": opportunity.opportunity_id,
        "name": current["name"],
        "pipeline_id": current["pipeline_id"],
        "stage_id": current["stage_id"],
        "monetary_value": _value(current["value"]),
        "assigned_to": current["assigned_to"],
        "date": change.won_date,
        "won_value_today": _value(change.won_day_total),
    }


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        result = pipeline.update(tables, event)
        if result is None or not event.live:
            return []
        opportunity, change = result
        out = []
        assignee = change.current["assigned_to"]
        if assignee:
            out.append(
                derived_event(
                    "project-update",
                    user_channel(assignee),
                    project_update_data(opportunity, change),
                    event,
                )
            )
        if change.won_date is not None:
            out.append(
                derived_event(
                    "project-won",
                    location_channel(opportunity.location_id),
                    project_won_data(opportunity, change),
                    event,
                )
            )
        return out

    return handle
