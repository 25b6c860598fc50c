"""The versions of each projection, the run computing each, and which one serves queries: pure
rules, no I/O.

A run is one replay worker (per live worker) with its own consumer group, changelog and data
directory that folds the projections started together (`replay start --projection all`) in one
read of the log: one pass instead of one per projection. A run exists while any of its
projections still has the version; a version dropped from a run that others still use leaves its
state there until the run's last version is dropped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.errors import StreamsError
from streams.tables.projection import Projection

__all__ = ["LIVE_VERSION", "ReplayError", "Run", "Versions", "run_id", "runs_wanted", "unit_id"]

LIVE_VERSION = 1
LIVE_GROUP = "streams"  # the live worker's consumer group


class ReplayError(StreamsError, ValueError):
    """An operation the versions' state does not allow; the message says why."""


def unit_id(name: str, version: int) -> str:
    """The run of version `version` of projection `name` replayed on its own."""
    return f"streams-{name}-v{version}"


@dataclass(frozen=True)
class Run:
    """A run: its id (consumer group, changelog prefix, data directory name) and the
    projections it folds, all of them from its start, whichever of their versions remain."""

    id: str
    version: int
    projections: tuple[str, ...]


def run_id(names: Sequence[str], version: int, *, every: bool = False) -> str:
    """The run that computes version `version` of the projections `names`, started together:
    its consumer group, changelog prefix and data directory name. A run reads the log once for
    all its projections; `every` says they are every projection (`--projection all`)."""
    if every:
        return f"streams-all-v{version}"
    if len(names) == 1:
        return unit_id(names[0], version)
    return f"streams-{'.'.join(sorted(names))}-v{version}"


@dataclass(frozen=True)
class Versions:
    """One projection's replayed versions and the version serving its queries (None: none yet),
    and the run computing each replayed version (absent: the projection's own, `unit_id`)."""

    replays: tuple[int, ...] = ()
    serving: int | None = None
    runs: Mapping[int, Run] = field(default_factory=dict)

    @classmethod
    def initial(cls, projection: Projection) -> Versions:
        return cls((), LIVE_VERSION if projection.live else None)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Versions:
        runs = {
            int(v): Run(run["id"], int(v), tuple(run["projections"]))
            for v, run in value.get("runs", {}).items()
        }
        return cls(tuple(sorted(int(v) for v in value["replays"])), value["serving"], runs)

    def to_json(self) -> dict[str, Any]:
        runs = {
            str(v): {"id": run.id, "projections": list(run.projections)}
            for v, run in self.runs.items()
        }
        return {"replays": list(self.replays), "serving": self.serving, "runs": runs}

    def group(self, projection: Projection, version: int) -> str:
        """The consumer group (and run) whose state is `version` of `projection`."""
        if projection.live and version == LIVE_VERSION:
            return LIVE_GROUP
        return self.run(projection, version).id

    def run(self, projection: Projection, version: int) -> Run:
        """The run computing replayed `version` of `projection`."""
        own = Run(unit_id(projection.name, version), version, (projection.name,))
        return self.runs.get(version, own)

    def all(self, projection: Projection) -> tuple[int, ...]:
        """Every version that exists, the live one included."""
        return ((LIVE_VERSION,) if projection.live else ()) + self.replays

    def start(self, projection: Projection, version: int, run: Run | None = None) -> Versions:
        """Record `version`, computed by `run` (default: the projection's own run)."""
        if version < 1:
            raise ReplayError(f"a version is a whole number from 1, got {version}")
        if version in self.all(projection):
            hint = " (the live worker's)" if projection.live and version == LIVE_VERSION else ""
            raise ReplayError(
                f"version {version} of {projection.name} exists already{hint}; "
                f"the next free one is {max(self.all(projection), default=0) + 1}"
            )
        runs = (
            {**self.runs, version: run}
            if run and run.projections != (projection.name,)
            else self.runs
        )
        return Versions(tuple(sorted((*self.replays, version))), self.serving, runs)

    def promote(self, projection: Projection, version: int) -> Versions:
        if version not in self.all(projection):
            raise ReplayError(f"{projection.name} has no version {version}")
        return Versions(self.replays, version, self.runs)

    def drop(self, projection: Projection, version: int) -> Versions:
        if projection.live and version == LIVE_VERSION:
            raise ReplayError(
                f"version 1 of {projection.name} is the live worker's state, which its "
                "notifications are computed from; it cannot be dropped"
            )
        if version not in self.replays:
            raise ReplayError(f"{projection.name} has no version {version}")
        if version == self.serving:
            raise ReplayError(
                f"version {version} of {projection.name} serves queries; promote another "
                "version first"
            )
        runs = {v: run for v, run in self.runs.items() if v != version}
        return Versions(tuple(v for v in self.replays if v != version), self.serving, runs)


def runs_wanted(recorded: Mapping[str, Versions], catalog: Mapping[str, Projection]) -> set[Run]:
    """Every run some projection still needs that this build can compute (it knows every
    projection of the run: a worker missing one would leave its partitions of it unfolded)."""
    runs = set()
    for name, versions in recorded.items():
        if name not in catalog:
            continue
        for version in versions.replays:
            run = versions.run(catalog[name], version)
            if all(p in catalog for p in run.projections):
                runs.add(run)
    return runs
