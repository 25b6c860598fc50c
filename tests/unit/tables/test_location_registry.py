from __future__ import annotations

from typing import Any

import pytest

from streams.events import BadRecord
from streams.tables import location_registry
from streams.tables.location_registry import notifies
from tests.unit.events import event


def fold(*bodies: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    tables: dict[str, dict[Any, Any]] = {location_registry.LOCATION_REGISTRY: {}}
    changes = [location_registry.update(tables, event(b)) for b in bodies]
    return tables[location_registry.LOCATION_REGISTRY], changes


INSTALL = {
    "type": "INSTALL",
    "appId": "app",
    "versionId": "v1",
    "installType": "Location",
    "locationId": "loc-1",
    "companyId": "co-1",
    "planId": "basic",
    "timestamp": "2026-03-01T10:00:00.000Z",
}


def test_install_plan_change_timezone_and_uninstall() -> None:
    registry, _ = fold(
        INSTALL,
        {
            "type": "PLAN_CHANGE",
            "appId": "app",
            "locationId": "loc-1",
            "companyId": "co-1",
            "newPlanId": "pro",
        },
        {"type": "LocationSettingsUpdated", "locationId": "loc-1", "timezone": "Europe/Paris"},
        {
            "type": "UNINSTALL",
            "appId": "app",
            "locationId": "loc-1",
            "timestamp": "2026-03-05T10:00:00Z",
        },
    )
    entry = registry["loc-1"]
    assert (entry["installed"], entry["plan_id"], entry["timezone"]) == (
        False,
        "pro",
        "Europe/Paris",
    )
    assert (
        entry["installed_at"] == "2026-03-01T10:00:00Z"
        and entry["uninstalled_at"] == "2026-03-05T10:00:00Z"
    )
    assert not notifies(entry)


def test_a_reinstall_notifies_again_and_an_unknown_location_notifies() -> None:
    registry, _ = fold(INSTALL, {"type": "UNINSTALL", "locationId": "loc-1"}, INSTALL)
    assert notifies(registry["loc-1"]) and registry["loc-1"]["uninstalled_at"] is None
    assert notifies(None)


def test_agency_level_events_fold_nothing() -> None:
    registry, changes = fold(
        {"type": "INSTALL", "appId": "app", "companyId": "co-1", "installType": "Company"}
    )
    assert registry == {} and changes == [None]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"type": "UNINSTALL", "appId": "app"}, "companyId"),
        ({"type": "PLAN_CHANGE", "locationId": "loc-1"}, "newPlanId"),
        (
            {"type": "LocationSettingsUpdated", "locationId": "loc-1", "timezone": "Mars/Olympus"},
            "timezone",
        ),
    ],
)
def test_unusable_lifecycle_events_are_bad_records(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        fold(body)
