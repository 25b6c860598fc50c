from __future__ import annotations

from streams.replay.changelog import differences
from streams.replay.cli import caught_up
from streams.replay.control import GroupLag


def lag(*partitions: tuple[int, int]) -> GroupLag:
    return GroupLag(dict(enumerate(partitions)), members=1)


def test_a_group_lag_counts_done_total_and_behind() -> None:
    progress = lag((10, 10), (3, 8), (0, 0))
    assert (progress.done, progress.total, progress.behind) == (13, 18, 5)
    assert progress.started
    assert not lag((0, 5)).started


def test_caught_up_means_no_further_behind_than_the_live_worker() -> None:
    live = lag((95, 100))
    assert caught_up(lag((95, 100)), live)
    assert caught_up(lag((100, 100)), live)
    assert not caught_up(lag((90, 100)), live)
    # With no live worker to compare with, only the head of the log counts.
    assert not caught_up(lag((99, 100)), lag((0, 100)))
    assert caught_up(lag((100, 100)), lag((0, 100)))


def test_differences_name_the_table_key_and_both_values() -> None:
    a = {"k1": {"n": 1}, "k2": 2}
    b = {"k1": {"n": 1}, "k2": 3, "k3": 4}
    assert differences("t", a, a) == []
    assert differences("t", a, b) == ["t[k2]: 2 != 3", "t[k3]: None != 4"]
    assert len(differences("t", {}, {f"k{i}": i for i in range(50)}, limit=10)) == 10
