"""The versions of each projection and which one serves queries: pure rules, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.errors import StreamsError
from streams.tables.projection import Projection

__all__ = ["LIVE_VERSION", "ReplayError", "Versions", "group_of", "unit_id"]

LIVE_VERSION = 1
LIVE_GROUP = "streams"  # the live worker's consumer group


class ReplayError(StreamsError, ValueError):
    """An operation the versions' state does not allow; the message says why."""


def unit_id(name: str, version: int) -> str:
    """The consumer group, changelog prefix and data directory name of a replayed version."""
    return f"streams-{name}-v{version}"


def group_of(projection: Projection, version: int) -> str:
    return (
        LIVE_GROUP
        if projection.live and version == LIVE_VERSION
        else unit_id(projection.name, version)
    )


@dataclass(frozen=True)
class Versions:
    """One projection's replayed versions and the version serving its queries (None: none yet)."""

    replays: tuple[int, ...] = ()
    serving: int | None = None

    @classmethod
    def initial(cls, projection: Projection) -> Versions:
        return cls((), LIVE_VERSION if projection.live else None)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Versions:
        return cls(tuple(sorted(int(v) for v in value["replays"])), value["serving"])

    def to_json(self) -> dict[str, Any]:
        return {"replays": list(self.replays), "serving": self.serving}

    def all(self, projection: Projection) -> tuple[int, ...]:
        """Every version that exists, the live one included."""
        return ((LIVE_VERSION,) if projection.live else ()) + self.replays

    def start(self, projection: Projection, version: int) -> Versions:
        if version < 1:
            raise ReplayError(f"a version is a whole number from 1, got {version}")
        if version in self.all(projection):
            hint = " (the live worker's)" if projection.live and version == LIVE_VERSION else ""
            raise ReplayError(
                f"version {version} of {projection.name} exists already{hint}; "
                f"the next free one is {max(self.all(projection), default=0) + 1}"
            )
        return Versions(tuple(sorted((*self.replays, version))), self.serving)

    def promote(self, projection: Projection, version: int) -> Versions:
        if version not in self.all(projection):
            raise ReplayError(f"{projection.name} has no version {version}")
        return Versions(self.replays, version)

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
        return Versions(tuple(v for v in self.replays if v != version), self.serving)
