"""Campaigns family: `CampaignStatusUpdate`. No projection reads it yet and nothing is sent; the
family checks each record names its location and campaign, so a broken one is dead-lettered
with the reason rather than silently kept."""

from __future__ import annotations

from typing import Any

from streams.events import BadRecord, Event
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler"]

TYPES = frozenset({"CampaignStatusUpdate"})


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        if event.location_id is None or not isinstance(event.body.get("id"), str):
            raise BadRecord(f"{event.type}: locationId and id (the campaign id) are required")
        return []

    return handle
