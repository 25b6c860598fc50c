from __future__ import annotations

import pytest

from streams.replay.versions import ReplayError, Run, Versions, run_id, runs_wanted, unit_id
from streams.tables.projection import Projection

LIVE = Projection("revenue", ())
ADDED = Projection("revenue_by_rep", (), live=False)


def test_a_live_projection_starts_with_the_live_worker_serving_version_1() -> None:
    versions = Versions.initial(LIVE)
    assert versions.serving == 1 and versions.all(LIVE) == (1,)
    assert versions.group(LIVE, 1) == "streams"
    assert versions.group(LIVE, 2) == unit_id("revenue", 2) == "streams-revenue-v2"


def test_a_projection_added_later_has_no_version_and_nothing_serving() -> None:
    versions = Versions.initial(ADDED)
    assert versions.serving is None and versions.all(ADDED) == ()
    started = versions.start(ADDED, 1)
    assert started.all(ADDED) == (1,) and started.group(ADDED, 1) == "streams-revenue_by_rep-v1"


def test_start_refuses_a_version_that_exists_and_names_the_next_free_one() -> None:
    versions = Versions.initial(LIVE).start(LIVE, 3)
    with pytest.raises(ReplayError, match=r"exists already.*the next free one is 4"):
        versions.start(LIVE, 3)
    with pytest.raises(ReplayError, match="live worker's"):
        versions.start(LIVE, 1)
    with pytest.raises(ReplayError, match="whole number from 1"):
        versions.start(LIVE, 0)
    assert versions.start(LIVE, 2).replays == (2, 3)


def test_promote_needs_an_existing_version() -> None:
    versions = Versions.initial(LIVE).start(LIVE, 2)
    assert versions.promote(LIVE, 2).serving == 2
    assert versions.promote(LIVE, 2).promote(LIVE, 1).serving == 1
    with pytest.raises(ReplayError, match="has no version 5"):
        versions.promote(LIVE, 5)


def test_drop_refuses_the_live_version_and_the_serving_one() -> None:
    versions = Versions.initial(LIVE).start(LIVE, 2).start(LIVE, 3).promote(LIVE, 2)
    with pytest.raises(ReplayError, match="live worker's state"):
        versions.drop(LIVE, 1)
    with pytest.raises(ReplayError, match="serves queries; promote another version first"):
        versions.drop(LIVE, 2)
    with pytest.raises(ReplayError, match="has no version 4"):
        versions.drop(LIVE, 4)
    assert versions.drop(LIVE, 3) == Versions((2,), 2)


def test_versions_round_trip_through_their_record() -> None:
    versions = Versions((3, 2), 3)
    assert Versions.from_json(versions.to_json()) == Versions((2, 3), 3)
    assert Versions.from_json({"replays": [], "serving": None}) == Versions((), None)
    ran = Versions((2,), 1, {2: Run("streams-all-v2", 2, ("revenue", "unread"))})
    assert Versions.from_json(ran.to_json()) == ran


UNREAD = Projection("unread", ())


def test_projections_started_together_share_one_run() -> None:
    assert run_id(["revenue"], 2) == "streams-revenue-v2"
    assert run_id(["unread", "revenue"], 2) == "streams-revenue.unread-v2"
    assert run_id(["revenue", "unread"], 2, every=True) == "streams-all-v2"
    both = Run("streams-all-v2", 2, ("revenue", "unread"))
    revenue = Versions.initial(LIVE).start(LIVE, 2, both)
    unread = Versions.initial(UNREAD).start(UNREAD, 2, both).start(UNREAD, 3)
    assert revenue.group(LIVE, 2) == unread.group(UNREAD, 2) == "streams-all-v2"
    assert unread.group(UNREAD, 3) == "streams-unread-v3"  # started alone: its own run
    catalog = {"revenue": LIVE, "unread": UNREAD}
    alone = Run("streams-unread-v3", 3, ("unread",))
    # The first projection's record names the whole run: its worker folds both from the start.
    assert runs_wanted({"revenue": revenue}, catalog) == {both}
    recorded = {"revenue": revenue, "unread": unread, "gone": Versions((2,), None)}
    assert runs_wanted(recorded, catalog) == {both, alone}
    # A version dropped from a run leaves the run (all of it) to the others; the last takes it.
    recorded["revenue"] = revenue.drop(LIVE, 2)
    assert recorded["revenue"].runs == {}
    assert runs_wanted(recorded, catalog) == {both, alone}
    recorded["unread"] = unread.drop(UNREAD, 2)
    assert runs_wanted(recorded, catalog) == {alone}
    # A build that does not know every projection of a run does not run it.
    assert runs_wanted({"unread": unread}, {"unread": UNREAD}) == {alone}
