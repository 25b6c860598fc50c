"""Location settings carried on the raw log: first-party `LocationSettingsUpdated` events.

Projections that need a location's local date keep the timezone in their own state, applied in
log order, so a replay of the log reproduces every local date exactly.
"""

from __future__ import annotations

from streams.events import BadRecord, Event, zone

__all__ = ["SETTINGS_TYPE", "timezone_from"]

SETTINGS_TYPE = "LocationSettingsUpdated"


def timezone_from(event: Event) -> tuple[str, str]:
    """(location id, IANA timezone) of a `LocationSettingsUpdated` event."""
    location_id = event.location_id
    if location_id is None:
        raise BadRecord(f"{SETTINGS_TYPE}: no locationId")
    name = event.body.get("timezone")
    if zone(name) is None:
        raise BadRecord(f"{SETTINGS_TYPE}: timezone {name!r} is not an IANA timezone")
    assert isinstance(name, str)
    return location_id, name
