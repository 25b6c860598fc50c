"""A family's table writes for one record, held until the record's notifications are safe.

Why: a worker killed outright (kill -9) after its tables took a record but before the record's
derived events reached Kafka loses those notifications for good: whoever processes the record
again finds it folded already and emits nothing. So a family agent folds each record into
`Staged` tables, sends the derived events and waits for Kafka's acknowledgement, and only then
applies the writes (`apply`). Killed in between, the record is folded again from the old state
and emits the same events with the same ids, which Ably's idempotency drops. A record that fails
leaves no partial writes (`discard`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

__all__ = ["Staged"]

_DELETED = object()


class Staged(MutableMapping[Any, Any]):
    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self.table = table
        self._writes: dict[Any, Any] = {}

    def __getitem__(self, key: Any) -> Any:
        if key in self._writes:
            value = self._writes[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._writes[key] = value

    def __delitem__(self, key: Any) -> None:
        self[key]  # KeyError when absent, as a mapping does
        self._writes[key] = _DELETED

    def __iter__(self) -> Iterator[Any]:
        keys = {k: None for k in self.table if k not in self._writes}
        keys.update({k: None for k, v in self._writes.items() if v is not _DELETED})
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def apply(self) -> None:
        for key, value in self._writes.items():
            if value is _DELETED:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        self._writes.clear()

    def discard(self) -> None:
        self._writes.clear()
