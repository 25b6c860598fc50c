"""What a projection is: tables folded from the raw log by pure functions, rebuildable as a unit.

A `Fold` applies one projection's pure folds to its tables for the event types it reads, and
returns what changed (the family agents turn that into derived events; a replay ignores it). A
`Projection` is what `streams replay` versions: its folds, applied in order to every record, with
all the tables its queries read (unread's per-user totals read contact assignments, so unread
carries the contacts fold).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from streams.events import Event

__all__ = ["Fold", "Projection", "Tables"]

# Table name -> table: a partition's tables in a worker (`streams.runtime.state`), plain dicts
# in unit tests.
Tables = Mapping[str, MutableMapping[Any, Any]]


@dataclass(frozen=True)
class Fold:
    tables: tuple[str, ...]
    types: frozenset[str]
    update: Callable[[Tables, Event], Any]
    # The live family agent that applies it: a dead letter re-driven for that family
    # (`streams dlq retry`) is folded by its folds only, as live.
    family: str = ""


@dataclass(frozen=True)
class Projection:
    name: str
    folds: tuple[Fold, ...]
    # Whether the live worker folds it too (its version 1, the state its notifications come
    # from). A projection added later starts with replayed versions only.
    live: bool = True

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t for fold in self.folds for t in fold.tables))

    @property
    def types(self) -> frozenset[str]:
        return frozenset(t for fold in self.folds for t in fold.types)

    def update(self, tables: Tables, event: Event, redriven_for: str | None = None) -> None:
        for fold in self.folds:
            if event.type in fold.types and redriven_for in (None, fold.family):
                fold.update(tables, event)
