"""The location registry: which locations have the app installed, their plan and timezone.

Folded from the app-lifecycle events of location installs (`INSTALL`, `UNINSTALL`, `PLAN_CHANGE`,
`UPDATE`, `APP_PAYMENT_STATUS`, `EXTERNAL_AUTH_CONNECTED`) and first-party
`LocationSettingsUpdated` (the timezone), in log order. Agency-level lifecycle events carry only
`companyId` and are keyed (partitioned) by it, not by any location, so they fold nothing here.

What uninstalling means: the location's history stays (the raw log is kept forever) and its
projections keep folding whatever still arrives, so queries answer as before and a reinstall
continues where it stopped; but nothing is sent to its channels any more (no derived events, no
reminders) until it is installed again. A location never seen installing (history from before
the log) counts as installed.

Table: `location_registry` (location id -> RegisteredLocation).
"""

from __future__ import annotations

from typing import TypedDict

from streams.events import BadRecord, Event, event_time, iso_z
from streams.tables import locations
from streams.tables.projection import Fold, Tables

__all__ = [
    "FOLD",
    "LIFECYCLE_TYPES",
    "LOCATION_REGISTRY",
    "RegisteredLocation",
    "apply_lifecycle",
    "notifies",
    "update",
]

LOCATION_REGISTRY = "location_registry"
LIFECYCLE_TYPES = frozenset(
    {
        "INSTALL",
        "UNINSTALL",
        "PLAN_CHANGE",
        "UPDATE",
        "APP_PAYMENT_STATUS",
        "EXTERNAL_AUTH_CONNECTED",
    }
)
TYPES = LIFECYCLE_TYPES | {locations.SETTINGS_TYPE}


class RegisteredLocation(TypedDict):
    installed: bool | None  # None: neither installed nor uninstalled in the log
    installed_at: str | None
    uninstalled_at: str | None
    company_id: str | None
    plan_id: str | None
    version_id: str | None
    payment_status: str | None
    external_auth: str | None  # authType of the last EXTERNAL_AUTH_CONNECTED
    timezone: str | None


def empty() -> RegisteredLocation:
    return {
        "installed": None,
        "installed_at": None,
        "uninstalled_at": None,
        "company_id": None,
        "plan_id": None,
        "version_id": None,
        "payment_status": None,
        "external_auth": None,
        "timezone": None,
    }


def notifies(location: RegisteredLocation | None) -> bool:
    """Whether derived events go to this location's channels (not after an uninstall)."""
    return location is None or location["installed"] is not False


def _text(body: dict[str, object], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def apply_lifecycle(location: RegisteredLocation | None, event: Event) -> RegisteredLocation:
    """The registry entry after a location-scoped lifecycle event."""
    body = event.body
    current = location or empty()
    at = iso_z(event_time(event))
    updated: RegisteredLocation = {
        **current,
        "company_id": _text(body, "companyId") or current["company_id"],
        "version_id": _text(body, "versionId") or current["version_id"],
    }
    if event.type == "INSTALL":
        updated |= {"installed": True, "installed_at": at, "uninstalled_at": None}
        updated["plan_id"] = _text(body, "planId") or current["plan_id"]
    elif event.type == "UNINSTALL":
        updated |= {"installed": False, "uninstalled_at": at}
    elif event.type == "PLAN_CHANGE":
        plan = _text(body, "newPlanId")
        if plan is None:
            raise BadRecord("PLAN_CHANGE: newPlanId is required")
        updated["plan_id"] = plan
    elif event.type == "APP_PAYMENT_STATUS":
        updated["payment_status"] = _text(body, "newStatus") or current["payment_status"]
    elif event.type == "EXTERNAL_AUTH_CONNECTED":
        updated["external_auth"] = _text(body, "authType") or current["external_auth"]
    return updated


def update(tables: Tables, event: Event) -> RegisteredLocation | None:
    """Fold `event` into the registry; the location's entry after it (None for agency events)."""
    registry = tables[LOCATION_REGISTRY]
    if event.type == locations.SETTINGS_TYPE:
        settings_location, timezone = locations.timezone_from(event)
        entry: RegisteredLocation = {
            **(registry.get(settings_location) or empty()),
            "timezone": timezone,
        }
        registry[settings_location] = entry
        return entry
    location_id = _text(event.body, "locationId")
    if location_id is None:
        if _text(event.body, "companyId") is None:
            raise BadRecord(f"{event.type}: neither locationId nor companyId")
        return None  # agency level: see the module docstring
    entry = apply_lifecycle(registry.get(location_id), event)
    registry[location_id] = entry
    return entry


FOLD = Fold((LOCATION_REGISTRY,), TYPES, update, family="app_lifecycle")
