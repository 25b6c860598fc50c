"""App lifecycle family: installs, uninstalls and plan changes fold into the location registry.

`unless_uninstalled` is how an uninstall silences a location: every family's handler is wrapped
in it by the composition root, so a location whose app was uninstalled still has its
projections folded but gets no derived events (see `streams.tables.location_registry`).
"""

from __future__ import annotations

from typing import Any

from streams.agents.family import Handler
from streams.events import Event
from streams.tables import location_registry
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler", "unless_uninstalled"]

TYPES = location_registry.TYPES


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        location_registry.update(tables, event)
        return []

    return handle


def unless_uninstalled(tables: Tables, handle: Handler) -> Handler:
    registry = tables[location_registry.LOCATION_REGISTRY]

    def guarded(event: Event) -> list[dict[str, Any]]:
        derived = handle(event)
        location_id = event.location_id
        if derived and location_id and not location_registry.notifies(registry.get(location_id)):
            return []
        return derived

    return guarded
