"""Which changelogs the sink follows for the recorded versions (pure)."""

from __future__ import annotations

from streams.mongo_sink.sink import sources
from streams.replay.versions import Run, Versions, run_id
from streams.tables.registry import PROJECTIONS

CATALOG = {p.name: p for p in PROJECTIONS}


def test_without_replays_every_projection_is_the_live_changelogs_version_1() -> None:
    assert sources({}, ["revenue", "unread"], CATALOG) == {
        "streams-changelog": {"revenue": 1, "unread": 1}
    }


def test_a_replayed_version_is_read_from_its_runs_changelog() -> None:
    every = Run(run_id([], 2, every=True), 2, tuple(CATALOG))
    recorded = {
        "revenue": Versions((2, 3), 2, {2: every}),
        "unread": Versions((2,), 1, {2: every}),
    }
    assert sources(recorded, ["revenue", "unread"], CATALOG) == {
        "streams-changelog": {"revenue": 1, "unread": 1},
        "streams-all-v2-changelog": {"revenue": 2, "unread": 2},
        "streams-revenue-v3-changelog": {"revenue": 3},
    }


def test_projections_not_chosen_are_not_followed() -> None:
    recorded = {"leads": Versions((2,), 2)}
    assert sources(recorded, ["revenue"], CATALOG) == {"streams-changelog": {"revenue": 1}}
