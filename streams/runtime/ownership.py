"""Which worker owns each partition, and which keeps a standby copy of it: a partition assignor
that every member of the group learns the whole placement from.

Each member sends its web URL and what it held before in its join metadata. The leader keeps each
partition with its previous owner where the shares allow (a rebalance moves as little state as it
can), gives each partition one standby on another member (its changelog followed continuously,
so a failover restores only the tail and queries can be answered while the owner is gone), and
sends every member the full placement in its assignment. Queries are routed with it
(`streams.api`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from yarl import URL

from streams.codec import dumps, loads

__all__ = ["Assignor", "Placement", "lasting_name", "leave_when_stopped", "plan"]

log = logging.getLogger(__name__)


def lasting_name(data_dir: Path, prefix: str) -> str:
    """A member's name that outlives its process: kept in its data directory, so a restart on
    the same state is the same member (its static membership, its transactional id)."""
    path = data_dir / "instance-id"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{prefix}-{uuid.uuid4().hex[:12]}\n")
    return path.read_text().strip()


@dataclass
class Placement:
    """The group's placement as this member last learned it."""

    url: str  # this worker's web URL
    active: dict[int, str] = field(default_factory=dict)  # partition -> owner URL
    standby: dict[int, list[str]] = field(default_factory=dict)  # partition -> holders' URLs
    partitions: int | None = None  # of the source topic
    # This worker's readable copy of a partition's tables (owned or standby), set by the loop.
    local: Callable[[int], Mapping[str, Any] | None] = lambda partition: None

    def tables(self, partition: int) -> Mapping[str, Any] | None:
        return self.local(partition)

    def owner_url(self, partition: int) -> str | None:
        return self.active.get(partition)

    def is_me(self, url: str) -> bool:
        return URL(url) == URL(self.url)

    def my_standbys(self) -> set[int]:
        return {p for p, urls in self.standby.items() if any(self.is_me(u) for u in urls)}


def plan(
    partitions: list[int], members: Mapping[str, dict[str, Any]], standbys: int = 1
) -> tuple[dict[int, str], dict[int, list[str]]]:
    """Active owner and standby holders (member ids) of each partition. `members`: id -> its
    metadata ({"owned": [...], "standby": [...]}) from its previous assignment."""
    ids = sorted(members)
    if not ids:
        return {}, {}
    share, extra = divmod(len(partitions), len(ids))
    owned = {m: [p for p in members[m].get("owned", []) if p in partitions] for m in ids}
    # The larger shares go to the members that own the most already: fewer partitions move.
    by_owned = sorted(ids, key=lambda m: (-len(owned[m]), m))
    quota = {m: share + (1 if i < extra else 0) for i, m in enumerate(by_owned)}
    active: dict[int, str] = {}
    # Keep each partition with its previous owner while its quota allows.
    for member in ids:
        for p in sorted(members[member].get("owned", [])):
            if p in partitions and p not in active and quota[member] > 0:
                active[p] = member
                quota[member] -= 1

    # Then its standby holder (its state is nearly restored), then anyone with room; the
    # partitions that have a standby holder first, so others do not take its room.
    def has_standby(p: int) -> bool:
        return any(p in members[m].get("standby", []) for m in ids)

    for p in sorted(partitions, key=lambda p: (not has_standby(p), p)):
        if p in active:
            continue
        holders = [m for m in ids if p in members[m].get("standby", []) and quota[m] > 0]
        candidates = holders or [m for m in ids if quota[m] > 0]
        member = max(candidates, key=lambda m: quota[m])
        active[p] = member
        quota[member] -= 1
    standby: dict[int, list[str]] = {}
    load = {m: 0 for m in ids}
    for p in partitions:
        others = [m for m in ids if m != active[p]]
        chosen: list[str] = []
        for _ in range(min(standbys, len(others))):
            previous = [m for m in others if p in members[m].get("standby", []) and m not in chosen]
            pool = previous or [m for m in others if m not in chosen]
            member = min(pool, key=lambda m: load[m])
            chosen.append(member)
            load[member] += 1
        standby[p] = chosen
    return active, standby


class Assignor(AbstractPartitionAssignor):
    """aiokafka's assignor interface, as an instance: it carries this worker's URL and placement."""

    name = "streams-placement"
    version = 0

    def __init__(self, placement: Placement, topic: str, standbys: int = 1) -> None:
        self.placement, self.topic, self.standbys = placement, topic, standbys

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        mine = {
            "url": self.placement.url,
            "owned": sorted(p for p, u in self.placement.active.items() if self.placement.is_me(u)),
            "standby": sorted(self.placement.my_standbys()),
        }
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), dumps(mine))

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        partitions = sorted(cluster.partitions_for_topic(self.topic) or ())
        meta = {m: _decode(md.user_data) for m, md in members.items()}
        active, standby = plan(partitions, meta, self.standbys)
        url = {m: meta[m].get("url", "") for m in members}
        placement = {
            "partitions": len(partitions),
            "active": {str(p): url[m] for p, m in active.items()},
            "standby": {str(p): [url[m] for m in ms] for p, ms in standby.items()},
        }
        data = dumps(placement)
        assignments = {}
        for member in members:
            mine = sorted(p for p, m in active.items() if m == member)
            assignments[member] = ConsumerProtocolMemberAssignment(
                self.version, [(self.topic, mine)], data
            )
        log.info(
            "placement: %s",
            {url[m]: sorted(p for p, o in active.items() if o == m) for m in members},
        )
        return assignments

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        placement = _decode(assignment.user_data)
        self.placement.partitions = placement.get("partitions")
        self.placement.active = {int(p): u for p, u in placement.get("active", {}).items()}
        self.placement.standby = {int(p): us for p, us in placement.get("standby", {}).items()}


def _decode(data: bytes | None) -> dict[str, Any]:
    try:
        value = loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def leave_when_stopped(consumer: AIOKafkaConsumer) -> None:
    """Make a static member's `stop()` leave the group as a dynamic member's does, for a worker
    stopped for good: a static member (KIP-345) stays in the group until its session times out,
    and its partitions wait that long for another owner. aiokafka sends LeaveGroup on close only
    for a member without a group instance id, and has no option for it (Kafka's own clients
    have `CloseOptions.leaveGroup`); the broker takes the leave by member id (checked on 4.4:
    the group empties at once; `tests/integration/test_runtime.py`). The instance id is
    dropped only as the coordinator leaves, after its last join: a rejoin still under way when
    the stop began keeps its static identity."""
    coordinator = consumer._coordinator
    leave = coordinator._maybe_leave_group
    assert hasattr(coordinator, "_group_instance_id"), "aiokafka's coordinator has changed"

    async def leave_as_a_dynamic_member() -> None:
        coordinator._group_instance_id = None
        await leave()

    coordinator._maybe_leave_group = leave_as_a_dynamic_member
