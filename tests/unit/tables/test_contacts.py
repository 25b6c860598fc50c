from __future__ import annotations

import pytest

from streams.events import BadRecord
from streams.tables.contacts import apply_contact_event, contact_id_of
from tests.unit.events import event


def contact(kind: str, **fields: object):
    return event({"type": kind, "locationId": "loc-1", "id": "c1", **fields})


def test_assignment_follows_contact_events_and_delete_forgets() -> None:
    state = apply_contact_event(None, contact("ContactCreate", assignedTo="u1"))
    assert state == {"location": "loc-1", "assigned_to": "u1"}
    state = apply_contact_event(state, contact("ContactTagUpdate", tags=["vip"]))
    assert state == {"location": "loc-1", "assigned_to": "u1"}  # absent field keeps it
    state = apply_contact_event(state, contact("ContactUpdate", assignedTo="u2"))
    assert state is not None and state["assigned_to"] == "u2"
    state = apply_contact_event(state, contact("ContactUpdate", assignedTo=None))
    assert state is not None and state["assigned_to"] is None
    assert apply_contact_event(state, contact("ContactDelete")) is None


def test_malformed_contact_events_are_bad_records() -> None:
    with pytest.raises(BadRecord, match="contact id"):
        contact_id_of(event({"type": "ContactCreate", "locationId": "loc-1"}))
    with pytest.raises(BadRecord, match="assignedTo"):
        apply_contact_event(None, contact("ContactUpdate", assignedTo=["u1"]))
