from __future__ import annotations

from streams.tables.leads import LocationLeads, apply_lead, apply_timezone, lead_key
from tests.unit.events import event


def contact_create(contact_id: str, at: str = "2026-03-01T10:00:00Z", location: str = "loc-1"):
    return event(
        {
            "type": "ContactCreate",
            "locationId": location,
            "id": contact_id,
            "dateAdded": at,
            "email": "x@example.com",
        }
    )


def fold(events: list, location: LocationLeads | None = None) -> LocationLeads:
    seen: set[str] = set()
    for e in events:
        key = lead_key(e.location_id, e.body["id"])
        location, _ = apply_lead(location, key in seen, e)
        seen.add(key)
    assert location is not None
    return location


def test_distinct_new_contacts_count_once_per_local_day() -> None:
    a = contact_create("a")
    leads = fold([a, contact_create("b"), a, contact_create("c", at="2026-03-02T09:00:00Z")])
    assert leads["days"] == {"2026-03-01": 2, "2026-03-02": 1}


def test_a_contact_created_twice_counts_on_its_first_day_only() -> None:
    leads = fold(
        [
            contact_create("a", at="2026-03-01T10:00:00Z"),
            contact_create("a", at="2026-03-05T10:00:00Z"),
        ]
    )
    assert leads["days"] == {"2026-03-01": 1}


def test_location_timezone_moves_leads_across_midnight() -> None:
    late = contact_create("a", at="2026-03-02T02:00:00Z")
    assert fold([late])["days"] == {"2026-03-02": 1}
    los_angeles = apply_timezone(None, "America/Los_Angeles")
    assert fold([late], los_angeles)["days"] == {"2026-03-01": 1}


def test_apply_lead_reports_the_day_counted() -> None:
    location, day = apply_lead(None, False, contact_create("a"))
    assert day == "2026-03-01"
    assert apply_lead(location, True, contact_create("a")) == (location, None)
