from __future__ import annotations

from typing import Any

import pytest

from streams.events import BadRecord
from streams.tables import pipeline
from streams.tables.pipeline import apply_opportunity, opportunity_from
from tests.unit.events import event


def opportunity(kind: str = "OpportunityUpdate", **fields: Any) -> Any:
    # The documented shape: all seven Opportunity* events carry the whole opportunity.
    body = {
        "type": kind,
        "locationId": "loc-1",
        "id": "opp-1",
        "assignedTo": "u1",
        "contactId": "c1",
        "monetaryValue": 40,
        "name": "Roof repair",
        "pipelineId": "p1",
        "pipelineStageId": "e93ba61a-53b3-45e7-985a-c7732dbcdb69",
        "source": "web",
        "status": "open",
        "dateAdded": "2026-03-01T12:41:02.193Z",
    }
    return event({**body, **fields})


def fold(events: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    tables: dict[str, dict[Any, Any]] = {name: {} for name in pipeline.FOLD.tables}
    changes = [pipeline.update(tables, e) for e in events]
    return tables, changes


STAGE = "e93ba61a-53b3-45e7-985a-c7732dbcdb69"


def test_open_opportunities_count_in_their_stage_with_their_value() -> None:
    tables, _ = fold(
        [
            opportunity("OpportunityCreate", monetaryValue=40.5),
            opportunity("OpportunityCreate", id="opp-2", monetaryValue=99.99),
        ]
    )
    stages = tables[pipeline.PIPELINES]["loc-1"]["stages"]
    assert stages == {"p1": {STAGE: {"open": 2, "value": 14049}}}


def test_a_stage_move_moves_count_and_value_and_the_specific_event_changes_nothing_more() -> None:
    tables, changes = fold(
        [
            opportunity("OpportunityCreate"),
            opportunity("OpportunityUpdate", pipelineStageId="s2"),
            opportunity("OpportunityStageUpdate", pipelineStageId="s2"),  # same change, new id
        ]
    )
    assert tables[pipeline.PIPELINES]["loc-1"]["stages"] == {
        "p1": {"s2": {"open": 1, "value": 4000}}
    }
    assert changes[2] is None
    _, change = changes[1]
    assert change.previous["stage_id"] == STAGE and change.current["stage_id"] == "s2"


def test_won_value_counts_on_the_local_day_it_is_first_won_only() -> None:
    tz = event(
        {"type": "LocationSettingsUpdated", "locationId": "loc-1", "timezone": "America/New_York"}
    )
    tables, changes = fold(
        [
            tz,
            opportunity("OpportunityCreate"),
            opportunity("OpportunityStatusUpdate", status="won", timestamp="2026-03-02T03:00:00Z"),
            opportunity("OpportunityStatusUpdate", status="open", timestamp="2026-03-03T03:00:00Z"),
            opportunity("OpportunityStatusUpdate", status="won", timestamp="2026-03-04T03:00:00Z"),
        ]
    )
    location = tables[pipeline.PIPELINES]["loc-1"]
    assert location["won"] == {"2026-03-01": 4000}  # 03:00 UTC is the evening before in New York
    assert location["stages"] == {}
    assert changes[2][1].won_date == "2026-03-01" and changes[4][1].won_date is None


def test_lost_abandoned_and_deleted_leave_the_open_totals_and_delete_is_final() -> None:
    tables, changes = fold(
        [
            opportunity("OpportunityCreate"),
            opportunity("OpportunityCreate", id="opp-2"),
            opportunity("OpportunityStatusUpdate", id="opp-2", status="lost"),
            opportunity("OpportunityDelete"),
            opportunity("OpportunityUpdate"),  # a late redelivery after the delete
        ]
    )
    assert tables[pipeline.PIPELINES]["loc-1"]["stages"] == {}
    assert tables[pipeline.OPPORTUNITIES]["loc-1/opp-1"]["status"] == "deleted"
    assert changes[4] is None


def test_an_older_redelivery_does_not_undo_a_newer_state() -> None:
    tables, changes = fold(
        [
            opportunity(pipelineStageId="s2", timestamp="2026-03-02T10:00:00Z"),
            opportunity(pipelineStageId="s1", timestamp="2026-03-02T09:00:00Z"),
        ]
    )
    assert changes[1] is None
    assert tables[pipeline.PIPELINES]["loc-1"]["stages"] == {
        "p1": {"s2": {"open": 1, "value": 4000}}
    }


def test_money_is_never_float_and_a_missing_value_keeps_the_known_one() -> None:
    state, change = apply_opportunity(None, None, opportunity_from(opportunity(monetaryValue=0.1)))
    assert change is not None and change.current["value"] == 10
    without = opportunity()
    del without.body["monetaryValue"]
    _, again = apply_opportunity(state, change.current, opportunity_from(without))
    assert again is None


def test_absent_assigned_to_keeps_the_assignment_and_null_unassigns() -> None:
    _, change = apply_opportunity(None, None, opportunity_from(opportunity()))
    assert change is not None
    partial = opportunity(name="Renamed")
    del partial.body["assignedTo"]
    _, kept = apply_opportunity(None, change.current, opportunity_from(partial))
    assert kept is not None and kept.current["assigned_to"] == "u1"
    _, unassigned = apply_opportunity(
        None, change.current, opportunity_from(opportunity(assignedTo=None))
    )
    assert unassigned is not None and unassigned.current["assigned_to"] is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": None}, "id"),
        ({"status": "maybe"}, "status"),
        ({"monetaryValue": "lots"}, "monetaryValue"),
        ({"monetaryValue": -5}, "negative"),
        ({"assignedTo": 7}, "assignedTo"),
    ],
)
def test_unusable_opportunities_are_bad_records_with_a_reason(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BadRecord, match=reason):
        opportunity_from(opportunity(**fields))


def test_an_open_opportunity_without_a_stage_is_a_bad_record() -> None:
    with pytest.raises(BadRecord, match="pipelineStageId"):
        fold([opportunity(pipelineStageId=None)])


def test_the_same_state_sent_later_moves_the_clock_so_an_older_redelivery_stays_out() -> None:
    tables, changes = fold(
        [
            opportunity(pipelineStageId="s1", timestamp="2026-03-02T09:00:00Z"),
            opportunity(pipelineStageId="s2", timestamp="2026-03-02T10:00:00Z"),
            opportunity(pipelineStageId="s2", timestamp="2026-03-02T12:00:00Z"),  # no change
            opportunity(pipelineStageId="s1", timestamp="2026-03-02T11:00:00Z"),  # stale
            opportunity(pipelineStageId="s2"),  # no timestamp: the clock stays
        ]
    )
    assert changes[2:] == [None, None, None]
    assert tables[pipeline.OPPORTUNITIES]["loc-1/opp-1"]["as_of"] == "2026-03-02T12:00:00+00:00"
    assert tables[pipeline.PIPELINES]["loc-1"]["stages"] == {
        "p1": {"s2": {"open": 1, "value": 4000}}
    }
