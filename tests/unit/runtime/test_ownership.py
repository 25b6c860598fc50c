"""`plan` (who owns and who keeps a standby of each partition) and the `Assignor` round trip."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)

from streams.runtime.ownership import Assignor, Placement, plan

TOPIC = "raw"


def owned(active: Mapping[int, str]) -> dict[str, list[int]]:
    """member -> the partitions it owns, as its next join metadata says."""
    mine: dict[str, list[int]] = {}
    for p, m in sorted(active.items()):
        mine.setdefault(m, []).append(p)
    return mine


def moved(before: Mapping[int, str], after: Mapping[int, str]) -> set[int]:
    return {p for p in after if p in before and before[p] != after[p]}


def check_balanced(partitions: list[int], members: list[str], active: Mapping[int, str]) -> None:
    assert sorted(active) == sorted(partitions)  # every partition, exactly one owner
    assert set(active.values()) <= set(members)
    shares = Counter(active.values())
    counts = [shares.get(m, 0) for m in members]
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("n_partitions", [1, 4, 7, 12])
@pytest.mark.parametrize("n_members", [1, 2, 3, 5])
def test_every_partition_has_one_owner_and_shares_differ_by_at_most_one(
    n_partitions: int, n_members: int
) -> None:
    partitions = list(range(n_partitions))
    members = [f"m{i}" for i in range(n_members)]
    active, standby = plan(partitions, {m: {} for m in members})
    check_balanced(partitions, members, active)
    assert sorted(standby) == partitions


def test_no_members_no_placement() -> None:
    assert plan([0, 1, 2], {}) == ({}, {})


def test_one_member_owns_everything_and_keeps_no_standby() -> None:
    active, standby = plan([0, 1, 2], {"solo": {}})
    assert active == {0: "solo", 1: "solo", 2: "solo"}
    assert all(holders == [] for holders in standby.values())


def test_a_standby_is_never_on_the_owner() -> None:
    partitions = list(range(8))
    active, standby = plan(partitions, {"a": {}, "b": {}, "c": {}})
    for p in partitions:
        assert len(standby[p]) == 1
        assert standby[p][0] != active[p]


def test_the_same_members_keep_the_same_placement() -> None:
    partitions = list(range(6))
    first, _ = plan(partitions, {"a": {}, "b": {}, "c": {}})
    again, _ = plan(partitions, {m: {"owned": ps} for m, ps in owned(first).items()})
    assert again == first


@pytest.mark.parametrize("newcomer", ["c", "0"])  # sorting after, and before, the old members
@pytest.mark.parametrize("n_partitions", [6, 8])
def test_a_third_member_takes_as_few_partitions_as_it_can(newcomer: str, n_partitions: int) -> None:
    partitions = list(range(n_partitions))
    before, _ = plan(partitions, {"a": {}, "b": {}})
    members: dict[str, dict[str, Any]] = {m: {"owned": ps} for m, ps in owned(before).items()}
    members[newcomer] = {}
    after, _ = plan(partitions, members)
    check_balanced(partitions, [*members], after)
    fewest = n_partitions // 3  # the newcomer's share, rounded down; nothing else need move
    assert len(moved(before, after)) == fewest
    assert all(after[p] == newcomer for p in moved(before, after))


def test_a_member_within_its_quota_keeps_all_it_owned() -> None:
    # 7 partitions, 2 members: one may own 4. "b" owned 4, "a" 3: nothing need move.
    before = {0: "a", 1: "a", 2: "a", 3: "b", 4: "b", 5: "b", 6: "b"}
    after, _ = plan(list(range(7)), {m: {"owned": ps} for m, ps in owned(before).items()})
    assert after == before


def test_a_member_over_its_quota_gives_up_only_the_excess() -> None:
    before = {p: "a" for p in range(6)}
    after, _ = plan(list(range(6)), {"a": {"owned": list(range(6))}, "b": {}})
    assert Counter(after.values()) == {"a": 3, "b": 3}
    assert all(before[p] == "a" for p in after if after[p] == "a")


def test_an_orphaned_partition_goes_to_its_standby_holder() -> None:
    # "a" owned 0 and left; "c" kept its standby. "b" has as much room as "c".
    members = {
        "b": {"owned": [1], "standby": [2]},
        "c": {"owned": [2], "standby": [0, 1]},
    }
    active, _ = plan([0, 1, 2, 3], members)
    assert active[0] == "c"
    assert active[1] == "b" and active[2] == "c"


def test_an_orphaned_partition_goes_to_its_standby_holder_even_when_it_sorts_last() -> None:
    members = {
        "a": {"owned": [1]},
        "b": {"owned": [2]},
        "z": {"owned": [3], "standby": [0]},
    }
    active, _ = plan([0, 1, 2, 3, 4, 5], members)
    assert active[0] == "z"


def test_an_orphan_without_standby_does_not_take_the_room_of_one_with_a_standby() -> None:
    # The owner of 0 and 1 left; "a" kept a standby of 1 and has room for one more, as has
    # "b". Partition 0 (no standby anywhere) is placed first: it must not take "a"'s room.
    members = {
        "a": {"owned": [3, 5], "standby": [1]},
        "b": {"owned": [2, 4]},
    }
    active, _ = plan(list(range(6)), members)
    assert active[1] == "a"
    assert active[0] == "b"


def test_standbys_stay_where_they_were() -> None:
    members = {
        "a": {"owned": [0, 1], "standby": [2, 3]},
        "b": {"owned": [2, 3], "standby": [4, 5]},
        "c": {"owned": [4, 5], "standby": [0, 1]},
    }
    active, standby = plan(list(range(6)), members)
    assert active == {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    assert standby == {0: ["c"], 1: ["c"], 2: ["a"], 3: ["a"], 4: ["b"], 5: ["b"]}


# -- the assignor -----------------------------------------------------------------------------


class FakeCluster:
    def __init__(self, partitions: set[int]) -> None:
        self._partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._partitions if topic == TOPIC else None


def rebalance(assignors: Mapping[str, Assignor], partitions: int) -> None:
    """One join round, through the wire encoding: every member's metadata to the leader, the
    leader's assignments back to each member."""
    metadata = {
        member: ConsumerProtocolMemberMetadata.decode(a.metadata([TOPIC]).encode())
        for member, a in assignors.items()
    }
    leader = next(iter(assignors.values()))
    assignments = leader.assign(FakeCluster(set(range(partitions))), metadata)  # type: ignore[arg-type]
    assert set(assignments) == set(assignors)
    for member, a in assignors.items():
        a.on_assignment(ConsumerProtocolMemberAssignment.decode(assignments[member].encode()))
        assert {tp.partition for tp in assignments[member].partitions()} == {
            p for p, url in a.placement.active.items() if a.placement.is_me(url)
        }


def test_every_member_learns_the_same_placement() -> None:
    urls = {
        "member-1": "http://w1:6066",
        "member-2": "http://w2:6066",
        "member-3": "http://w3:6066",
    }
    assignors = {m: Assignor(Placement(url), TOPIC) for m, url in urls.items()}
    rebalance(assignors, 8)
    placements = [a.placement for a in assignors.values()]
    first = placements[0]
    assert sorted(first.active) == list(range(8))
    assert set(first.active.values()) == set(urls.values())
    assert max(Counter(first.active.values()).values()) == 3
    for placement in placements:
        assert placement.partitions == 8
        assert placement.active == first.active
        assert placement.standby == first.standby
        assert placement.my_standbys() == {
            p for p, holders in first.standby.items() if placement.url in holders
        }
        assert not placement.my_standbys() & {
            p for p, url in placement.active.items() if url == placement.url
        }
    assert set().union(*(p.my_standbys() for p in placements)) == set(range(8))


def test_a_second_rebalance_keeps_ownership_and_the_last_member_takes_everything() -> None:
    assignors = {m: Assignor(Placement(f"http://{m}:6066"), TOPIC) for m in ("w1", "w2")}
    rebalance(assignors, 6)
    before = dict(assignors["w1"].placement.active)
    rebalance(assignors, 6)
    assert assignors["w2"].placement.active == before

    # w2 leaves: w1 takes everything, and there is no one left for standbys.
    del assignors["w2"]
    rebalance(assignors, 6)
    assert set(assignors["w1"].placement.active.values()) == {"http://w1:6066"}
    assert assignors["w1"].placement.my_standbys() == set()


def test_owner_url_and_unknown_partitions() -> None:
    placement = Placement("http://w1:6066", active={0: "http://w2:6066"})
    assert placement.owner_url(0) == "http://w2:6066"
    assert placement.owner_url(1) is None


def test_is_me_ignores_a_trailing_slash_and_host_case() -> None:
    placement = Placement("http://w1:6066")
    assert placement.is_me("http://w1:6066/")
    assert placement.is_me("http://W1:6066")
    assert not placement.is_me("http://w1:6067")
    assert not placement.is_me("http://w2:6066/")
    slashed = Placement("http://w1:6066/", standby={3: ["http://w1:6066"], 4: ["http://w2:6066"]})
    assert slashed.my_standbys() == {3}
