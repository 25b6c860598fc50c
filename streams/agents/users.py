"""Users and locations family: `UserCreate|Update|Delete`, `LocationCreate|Update`.

No projection reads them yet and nothing is sent. Location events are agency-level: they carry the
location only as `id` and are keyed (partitioned) by `companyId`, so they cannot update anything
kept per location (that lives in the location's own partition); the location registry is folded
from the app-lifecycle events instead. The family checks each record names its user or location.
"""

from __future__ import annotations

from typing import Any

from streams.events import BadRecord, Event
from streams.tables.projection import Tables

__all__ = ["TYPES", "handler"]

USER_TYPES = frozenset({"UserCreate", "UserUpdate", "UserDelete"})
LOCATION_TYPES = frozenset({"LocationCreate", "LocationUpdate"})
TYPES = USER_TYPES | LOCATION_TYPES


def handler(tables: Tables) -> Any:
    def handle(event: Event) -> list[dict[str, Any]]:
        body = event.body
        if not isinstance(body.get("id"), str) or not body["id"]:
            raise BadRecord(f"{event.type}: id is required")
        if not (body.get("locationId") or body.get("companyId")):
            raise BadRecord(f"{event.type}: neither locationId nor companyId")
        return []

    return handle
