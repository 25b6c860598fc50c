"""A partition's tables as the folds see them: the store, plus this batch's changes in memory.

The folds read and write `Table`s (mutable mappings). A write goes to the batch's changes, not
to RocksDB: at the end of the batch each changed key is sent once to the changelog, inside the
batch's transaction, and written once to the store after that transaction committed
(`streams.runtime.task`). While a batch commits, the next one folds on top of it. A record whose
fold fails is rolled back alone (`apply`), so a bad record leaves no partial writes in its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from streams.codec import dumps
from streams.errors import StreamsError
from streams.runtime.store import Store, table_and_key, table_prefix
from streams.topics import STATE_ROW_MAX_BYTES

__all__ = ["DELETED", "PartitionState", "StateTooLarge", "Table"]

DELETED = object()  # a deletion among the changes
# Not there: in the undo log, the key had no change in the batch before the fold; in a read, the
# key is not among the changes, the batch being committed or the store's cache.
_ABSENT = object()
_T = TypeVar("_T")


class StateTooLarge(StreamsError, RuntimeError):
    """A table value larger than its changelog takes. Kafka would refuse the batch on every
    retry, so the worker stops and says which value (a table shape to change, not bad input)."""


class PartitionState:
    def __init__(
        self, store: Store, tables: tuple[str, ...], row_limit: int | None = STATE_ROW_MAX_BYTES
    ) -> None:
        """`row_limit`: the largest row (key and value) `seal` takes, None for any (a replica
        of a changelog, whose rows it already holds)."""
        self.store = store
        self.row_limit = row_limit
        self.changes: dict[bytes, Any] = {}  # store key -> value or DELETED
        # The changes of the batch being committed (sealed): read beneath `changes` until the
        # store holds them, so folding goes on while a commit is in flight.
        self.committing: dict[bytes, Any] = {}
        self._undo: dict[bytes, Any] | None = None
        self.tables: Mapping[str, Table] = {name: Table(self, name) for name in tables}

    def get(self, key: bytes) -> Any:
        value = self.changes.get(key, _ABSENT)
        if value is _ABSENT:
            value = self.committing.get(key, _ABSENT)
            if value is _ABSENT:
                return self.store.get(key)
        return None if value is DELETED else value

    def put(self, key: bytes, value: Any) -> None:
        undo = self._undo
        if undo is not None and key not in undo:
            undo[key] = self.changes.get(key, _ABSENT)
        self.changes[key] = value

    def apply(self, fold: Callable[[Any], _T], event: Any) -> _T:
        """`fold(event)`, its writes undone when it raises: one family's fold of one record, or
        a tick of the loop."""
        undo: dict[bytes, Any] = {}
        self._undo = undo
        try:
            return fold(event)
        except BaseException:
            self._rollback(undo)
            raise
        finally:
            self._undo = None

    def _rollback(self, undo: dict[bytes, Any]) -> None:
        changes = self.changes
        for key, before in undo.items():
            if before is _ABSENT:
                changes.pop(key, None)
            else:
                changes[key] = before

    def seal(self) -> list[tuple[bytes, bytes | None, Any]]:
        """Set the batch's changes aside for its commit; (key, encoded value or None for a
        deletion, value) of each changed key. New writes start a new batch."""
        assert not self.committing, "one commit at a time"
        self.committing, self.changes = self.changes, {}
        sealed: list[tuple[bytes, bytes | None, Any]] = []
        append = sealed.append
        for key, value in self.committing.items():
            if value is DELETED:
                append((key, None, None))
                continue
            raw = dumps(value)
            if self.row_limit is not None and len(raw) + len(key) > self.row_limit:
                table, name = table_and_key(key)
                raise StateTooLarge(
                    f"{table}[{name!r}] is {len(raw):,} bytes, over the {self.row_limit:,} "
                    "a row of the changelog takes: this table's shape cannot hold it"
                )
            append((key, raw, value))
        return sealed

    def sealed_stored(self) -> None:
        """The store holds the sealed changes now."""
        self.committing = {}

    def discard(self) -> None:
        self.changes.clear()
        self.committing = {}


class Table(MutableMapping[Any, Any]):
    """One table of one partition. Values are JSON; None is never stored (it reads as absent)."""

    def __init__(self, state: PartitionState, name: str) -> None:
        self._state = state
        self.name = name
        self._prefix = table_prefix(name)

    def _key(self, key: Any) -> bytes:
        return self._prefix + dumps(key)

    # The folds' hot path, about ten a record: `PartitionState.get` and `put` written out here
    # (and the store's cache looked up before its method is called), which saves two or three
    # Python calls each.
    def get(self, key: Any, default: Any = None) -> Any:
        state = self._state
        raw_key = self._prefix + dumps(key)
        value = state.changes.get(raw_key, _ABSENT)
        if value is _ABSENT:
            value = state.committing.get(raw_key, _ABSENT)
            if value is _ABSENT:
                store = state.store
                value = store.cache.get(raw_key, _ABSENT)
                if value is _ABSENT:
                    value = store.load(raw_key)
        return default if value is None or value is DELETED else value

    def __getitem__(self, key: Any) -> Any:
        value = self._state.get(self._key(key))
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        state = self._state
        raw_key = self._prefix + dumps(key)
        changes, undo = state.changes, state._undo
        if undo is not None and raw_key not in undo:
            undo[raw_key] = changes.get(raw_key, _ABSENT)
        changes[raw_key] = DELETED if value is None else value

    def __delitem__(self, key: Any) -> None:
        self[key]  # KeyError when absent, as a mapping does
        self._state.put(self._key(key), DELETED)

    def pop(self, key: Any, default: Any = None) -> Any:
        value = self.get(key)
        if value is None:
            return default
        self._state.put(self._key(key), DELETED)
        return value

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        """The stored rows with the batch's changes over them."""
        state, prefix = self._state, self._prefix
        changed = {k: v for k, v in state.committing.items() if k.startswith(prefix)}
        changed.update((k, v) for k, v in state.changes.items() if k.startswith(prefix))
        for key, value in state.store.items(self.name):
            now = changed.pop(self._key(key), _ABSENT)
            if now is _ABSENT:
                yield key, value
            elif now is not DELETED:
                yield key, now
        for raw, value in changed.items():
            if value is not DELETED:
                yield table_and_key(raw)[1], value

    def __iter__(self) -> Iterator[Any]:
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.items())
