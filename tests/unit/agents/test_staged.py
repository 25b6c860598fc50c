import pytest

from streams.agents.staged import Staged


def test_writes_are_seen_by_the_record_and_reach_the_table_only_when_applied() -> None:
    table = {"a": 1, "b": 2}
    staged = Staged(table)
    staged["a"] = 10
    staged["c"] = 3
    del staged["b"]
    assert (staged["a"], staged.get("b"), staged["c"]) == (10, None, 3)
    assert sorted(staged) == ["a", "c"] and len(staged) == 2
    assert table == {"a": 1, "b": 2}  # nothing written yet
    staged.apply()
    assert table == {"a": 10, "c": 3}


def test_discarded_writes_leave_the_table_as_it_was() -> None:
    table = {"a": 1}
    staged = Staged(table)
    staged["a"] = 2
    staged.pop("a")
    staged.discard()
    assert staged["a"] == 1 and table == {"a": 1}
    with pytest.raises(KeyError):
        del staged["missing"]
