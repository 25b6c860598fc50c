"""`PartitionState` and `Table`: a batch's changes in memory over the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams.codec import dumps, loads
from streams.runtime.state import PartitionState, StateTooLarge
from streams.runtime.store import Store, store_key
from streams.topics import STATE_MAX_BYTES, STATE_ROW_MAX_BYTES


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "p0")
    s.write(
        [
            (store_key("t", "a"), dumps({"n": 1}), {"n": 1}),
            (store_key("t", "b"), dumps({"n": 2}), {"n": 2}),
            (store_key("t", "c"), dumps({"n": 3}), {"n": 3}),
            (store_key("other", "a"), dumps("elsewhere"), "elsewhere"),
        ],
        1,
    )
    yield s
    s.close()


@pytest.fixture
def state(store: Store) -> PartitionState:
    return PartitionState(store, ("t", "other"))


class Boom(Exception):
    pass


def test_reads_see_the_batch_over_the_store(state: PartitionState, store: Store) -> None:
    t = state.tables["t"]
    assert t["a"] == {"n": 1}  # from the store
    t["a"] = {"n": 10}
    t["new"] = "fresh"
    assert t["a"] == {"n": 10}
    assert t.get("new") == "fresh"
    assert store.get(store_key("t", "a")) == {"n": 1}  # the store is untouched until commit
    assert state.tables["other"]["a"] == "elsewhere"


def test_setting_none_records_a_deletion_that_reads_as_absent(state: PartitionState) -> None:
    t = state.tables["t"]
    t["a"] = None
    assert t.get("a") is None
    assert t.get("a", "dflt") == "dflt"
    assert "a" not in t
    with pytest.raises(KeyError):
        t["a"]


def test_pop_records_a_deletion_and_returns_the_value(state: PartitionState) -> None:
    t = state.tables["t"]
    assert t.pop("b") == {"n": 2}
    assert t.get("b") is None
    with pytest.raises(KeyError):
        t["b"]
    assert t.pop("b", "gone") == "gone"
    assert t.pop("never") is None


def test_del_of_a_missing_key_raises_and_of_a_present_one_deletes(state: PartitionState) -> None:
    t = state.tables["t"]
    with pytest.raises(KeyError):
        del t["never"]
    del t["c"]
    assert "c" not in t


def test_apply_rolls_back_exactly_its_own_writes_when_it_raises(state: PartitionState) -> None:
    t = state.tables["t"]
    t["a"] = "batch value"  # changed before the record
    t["b"] = "kept"  # changed before, untouched inside

    def fold(_: object) -> None:
        t["a"] = "record value"
        t["a"] = "record value again"
        t["new"] = "record only"
        t.pop("c")
        raise Boom

    with pytest.raises(Boom):
        state.apply(fold, None)
    assert t["a"] == "batch value"
    assert t["b"] == "kept"
    assert "new" not in t
    assert t["c"] == {"n": 3}  # from the store again
    assert set(state.changes) == {store_key("t", "a"), store_key("t", "b")}


def test_apply_keeps_its_writes_when_it_does_not_raise(state: PartitionState) -> None:
    t = state.tables["t"]

    def fold(_: object) -> None:
        t["a"] = "one"
        t["new"] = "two"
        del t["c"]

    def failing(_: object) -> None:
        t["a"] = "three"
        raise Boom

    state.apply(fold, None)
    assert (t["a"], t["new"], t.get("c")) == ("one", "two", None)
    # and a later failing record does not undo the earlier, successful one
    with pytest.raises(Boom):
        state.apply(failing, None)
    assert t["a"] == "one"


def test_apply_returns_the_folds_answer_and_undoes_only_a_failing_folds_writes(
    state: PartitionState,
) -> None:
    t = state.tables["t"]
    t["a"] = "batch value"

    def fold(value: str) -> list[str]:
        t["a"] = value
        t["new"] = value
        return [value]

    def failing(value: str) -> list[str]:
        fold(value)
        del t["c"]
        raise Boom

    assert state.apply(fold, "one") == ["one"]
    assert (t["a"], t["new"]) == ("one", "one")
    with pytest.raises(Boom):
        state.apply(failing, "two")
    assert (t["a"], t["new"], t["c"]) == ("one", "one", {"n": 3})
    t["later"] = "outside any fold"  # no undo log is left behind to grow
    assert state._undo is None


def test_items_merge_stored_rows_and_changes(state: PartitionState) -> None:
    t = state.tables["t"]
    t["a"] = "changed"
    del t["b"]
    t["z"] = "new"
    assert dict(t.items()) == {"a": "changed", "c": {"n": 3}, "z": "new"}
    assert sorted(t) == ["a", "c", "z"]
    assert len(t) == 3
    assert dict(state.tables["other"].items()) == {"a": "elsewhere"}


def test_items_do_not_mix_a_table_whose_name_is_a_prefix(store: Store) -> None:
    state = PartitionState(store, ("t", "tt"))
    state.tables["tt"]["x"] = 1
    state.tables["t"]["y"] = 2
    assert dict(state.tables["tt"].items()) == {"x": 1}
    assert dict(state.tables["t"].items()) == {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}, "y": 2}


def test_seal_gives_key_json_and_value(state: PartitionState) -> None:
    t = state.tables["t"]
    t["a"] = {"n": 11}
    t["b"] = None
    changes = {key: (raw, value) for key, raw, value in state.seal()}
    assert changes.keys() == {store_key("t", "a"), store_key("t", "b")}
    raw, value = changes[store_key("t", "a")]
    assert raw is not None and loads(raw) == {"n": 11} and value == {"n": 11}
    assert changes[store_key("t", "b")] == (None, None)


def test_sealed_changes_written_to_the_store_read_back(state: PartitionState, store: Store) -> None:
    t = state.tables["t"]
    t["a"] = "new a"
    del t["b"]
    store.write(state.seal(), 2)
    state.sealed_stored()
    assert dict(t.items()) == {"a": "new a", "c": {"n": 3}}


def test_a_batch_folded_while_the_previous_commits_reads_through_it(
    state: PartitionState, store: Store
) -> None:
    t = state.tables["t"]
    t["a"] = "sealed a"
    del t["b"]
    sealed = state.seal()
    # The next batch sees the sealed changes before the store has them, and overrides them.
    assert t["a"] == "sealed a" and "b" not in t
    t["b"] = "back"
    t["c"] = "next c"
    assert dict(t.items()) == {"a": "sealed a", "b": "back", "c": "next c"}
    store.write(sealed, 2)
    state.sealed_stored()
    assert dict(t.items()) == {"a": "sealed a", "b": "back", "c": "next c"}
    assert {k for k, _, _ in state.seal()} == {store_key("t", "b"), store_key("t", "c")}


def test_one_commit_at_a_time(state: PartitionState) -> None:
    state.tables["t"]["a"] = 1
    state.seal()
    with pytest.raises(AssertionError):
        state.seal()


def test_discard_forgets_the_changes(state: PartitionState) -> None:
    t = state.tables["t"]
    t["a"] = "x"
    t["new"] = "y"
    state.discard()
    assert state.changes == {}
    assert state.seal() == []
    assert t["a"] == {"n": 1}
    assert "new" not in t


def test_a_value_larger_than_the_changelog_takes_stops_with_its_table_and_key(
    state: PartitionState,
) -> None:
    state.row_limit = 100
    state.tables["t"]["a"] = {"n": 1}
    state.tables["t"]["big"] = {"text": "x" * 200}
    with pytest.raises(StateTooLarge, match=r"t\['big'\] is 2\d\d bytes, over the 100 a row"):
        state.seal()


def test_a_replica_of_a_changelog_takes_any_row_it_holds(store: Store) -> None:
    replica = PartitionState(store, ("t",), row_limit=None)
    replica.tables["t"]["big"] = "x" * (STATE_ROW_MAX_BYTES + 1)
    [(_, raw, _)] = replica.seal()
    assert raw is not None and len(raw) > STATE_ROW_MAX_BYTES


def test_the_largest_row_a_batch_seals_fits_in_the_changelogs_record_batch(
    state: PartitionState,
) -> None:
    # The broker checks a whole record batch against the changelog's max.message.bytes: the
    # largest row sealed, framed as the transaction sends it, must be under it.
    key = store_key("t", "k")
    biggest = "x" * (STATE_ROW_MAX_BYTES - len(key) - len(dumps("")))
    state.tables["t"]["k"] = biggest
    ((_, raw, _),) = state.seal()
    assert raw is not None and len(key) + len(raw) == STATE_ROW_MAX_BYTES
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=1,
        producer_id=1,
        producer_epoch=0,
        base_sequence=0,
        batch_size=2 * STATE_MAX_BYTES,
    )
    assert builder.append(0, 0, key, raw, []) is not None
    assert len(builder.build()) <= STATE_MAX_BYTES
    state.sealed_stored()
    state.tables["t"]["k"] = biggest + "x"  # one byte more
    with pytest.raises(StateTooLarge):
        state.seal()
