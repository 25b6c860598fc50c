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


def test_a_record_joins_its_batch_and_the_batch_writes_each_key_once_naming_its_record() -> None:
    table = {"a": 1, "b": 2}
    batch = Staged(table)
    for origin, value in (("r1", 10), ("r2", 20)):
        record = Staged(batch)
        record["a"] = record["a"] + value
        batch.origin = origin
        record.apply()
    failed = Staged(batch)
    failed["b"] = 99
    failed.discard()  # a record that failed leaves nothing in the batch
    record = Staged(batch)
    del record["b"]
    batch.origin = "r3"
    record.apply()
    assert table == {"a": 1, "b": 2}
    written: list[tuple[str, object]] = []
    batch.apply(before_write=lambda origin: written.append((origin, dict(table))))
    assert table == {"a": 31}
    # One write per key, each preceded by the record that last wrote it.
    assert [origin for origin, _ in written] == ["r2", "r3"]


def test_items_are_the_tables_own_then_the_staged_ones() -> None:
    class PartitionLocal(dict[str, int]):
        """Like a Faust table: `[key]` sees one partition, `items()` every one."""

        def __getitem__(self, key: str) -> int:
            raise KeyError(key)

    staged = Staged(PartitionLocal(a=1, b=2, c=3))
    staged["b"] = 20
    staged["d"] = 4
    staged["e"] = 5
    del staged["e"]
    assert sorted(staged.items()) == [("a", 1), ("b", 20), ("c", 3), ("d", 4)]
