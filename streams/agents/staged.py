"""Table writes held back until Kafka holds them, with the derived events they cause.

Agents fold records into `Staged` copies of the tables; `streams.agents.effects` sends the
derived events together with a marker of the staged writes and, once Kafka acknowledges them,
applies the writes (`apply`). See that module for why.

Two levels: a batch's writes (`Staged` over the table) and one record's writes (`Staged` over
the batch's). A record that fails leaves no partial writes (`discard`); one that succeeds joins
the batch (`apply`), each write remembering the record it came from (`origin`), because Faust
stores and logs a table write in the partition of the record being processed.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, MutableMapping
from typing import Any

__all__ = ["DELETED", "Staged"]

DELETED = object()  # a staged deletion, in `changes`


class Staged(MutableMapping[Any, Any]):
    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self.table = table
        self.origin: Any = None  # what the next writes come from
        self._writes: dict[Any, tuple[Any, Any]] = {}  # key -> (value or DELETED, origin)

    def __getitem__(self, key: Any) -> Any:
        if key in self._writes:
            value = self._writes[key][0]
            if value is DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._writes[key] = (value, self.origin)

    def __delitem__(self, key: Any) -> None:
        self[key]  # KeyError when absent, as a mapping does
        self._writes[key] = (DELETED, self.origin)

    def __iter__(self) -> Iterator[Any]:
        keys = {k: None for k in self.table if k not in self._writes}
        keys.update({k: None for k, (v, _) in self._writes.items() if v is not DELETED})
        return iter(keys)

    def items(self) -> ItemsView[Any, Any]:
        return _Items(self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def apply(self, before_write: Callable[[Any], None] | None = None) -> None:
        """Write through to the table, each key once; `before_write(origin)` before each."""
        for key, (value, origin) in self._writes.items():
            if before_write is not None:
                before_write(origin)
            if value is DELETED:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        self._writes.clear()

    def changes(self) -> Iterator[tuple[Any, Any, Any]]:
        """(key, value or DELETED, origin) of each staged write."""
        for key, (value, origin) in self._writes.items():
            yield key, value, origin

    def discard(self) -> None:
        self._writes.clear()


class _Items(ItemsView[Any, Any]):
    """The table's own items, then the staged ones. Why not the mapping's default (each key,
    then its value): a Faust table's `[key]` looks only in the partition of the record being
    processed, while its `items()` covers every partition it holds."""

    _mapping: Staged

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        staged = self._mapping
        for key, value in staged.table.items():
            if key not in staged._writes:
                yield key, value
        for key, (value, _) in staged._writes.items():
            if value is not DELETED:
                yield key, value
