"""Table writes held back until the notifications they cause are safe in Kafka.

Why: a worker killed outright (kill -9) after its tables took a record but before the record's
derived events reached Kafka loses those notifications for good: whoever processes the record
again finds it folded already and emits nothing. So the families agent folds records into
`Staged` tables, sends the derived events, waits for Kafka's acknowledgement, and only then
applies the writes (`apply`). Killed in between, the records are folded again from the old state
and emit the same events with the same ids, which Ably's idempotency drops.

Two levels: a batch's writes (`Staged` over the table) and one record's writes (`Staged` over
the batch's). A record that fails leaves no partial writes (`discard`); one that succeeds joins
the batch (`apply`), each write remembering the record it came from (`origin`), because Faust
stores and logs a table write in the partition of the record being processed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

__all__ = ["Staged"]

_DELETED = object()


class Staged(MutableMapping[Any, Any]):
    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self.table = table
        self.origin: Any = None  # what the next writes come from
        self._writes: dict[Any, tuple[Any, Any]] = {}  # key -> (value or _DELETED, origin)

    def __getitem__(self, key: Any) -> Any:
        if key in self._writes:
            value = self._writes[key][0]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._writes[key] = (value, self.origin)

    def __delitem__(self, key: Any) -> None:
        self[key]  # KeyError when absent, as a mapping does
        self._writes[key] = (_DELETED, self.origin)

    def __iter__(self) -> Iterator[Any]:
        keys = {k: None for k in self.table if k not in self._writes}
        keys.update({k: None for k, (v, _) in self._writes.items() if v is not _DELETED})
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def apply(self, before_write: Callable[[Any], None] | None = None) -> None:
        """Write through to the table, each key once; `before_write(origin)` before each."""
        for key, (value, origin) in self._writes.items():
            if before_write is not None:
                before_write(origin)
            if value is _DELETED:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        self._writes.clear()

    def discard(self) -> None:
        self._writes.clear()
