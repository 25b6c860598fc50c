"""The versions topic (`streams.projections.v1`), read and written; and where each version is
in the raw log (its lag), from its consumer group's committed offsets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError
from aiokafka.protocol.admin import DeleteGroupsRequest

from streams.codec import dumps, loads_object
from streams.replay.versions import Versions
from streams.topics import PROJECTION_VERSIONS, RAW_WEBHOOKS, partition_ids

__all__ = [
    "Position",
    "read_versions",
    "watch_versions",
    "write_versions",
]

CONTROL = TopicPartition(PROJECTION_VERSIONS.name, 0)
GROUP_ID_NOT_FOUND = 69
# A fresh cluster has no group coordinator until the first group uses it: nobody is a member and
# nothing is committed yet.
COORDINATOR_NOT_YET = (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError)


async def read_versions(bootstrap: str) -> dict[str, Versions]:
    """Every projection's recorded versions, as of now."""
    async for versions in watch_versions(bootstrap, follow=False):
        return versions
    raise AssertionError("unreachable")


async def watch_versions(
    bootstrap: str, *, follow: bool = True
) -> AsyncIterator[dict[str, Versions]]:
    """The recorded versions once read to the end of the topic, then again after each change."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([CONTROL])
        await consumer.seek_to_beginning(CONTROL)
        end = (await consumer.end_offsets([CONTROL]))[CONTROL]
        state: dict[str, Versions] = {}
        while await consumer.position(CONTROL) < end:
            _apply(state, (await consumer.getmany(CONTROL, timeout_ms=1000)).get(CONTROL, []))
        yield dict(state)
        while follow:
            records = (await consumer.getmany(CONTROL, timeout_ms=1000)).get(CONTROL, [])
            if records:
                _apply(state, records)
                yield dict(state)
    finally:
        await consumer.stop()


def _apply(state: dict[str, Versions], records: Iterable[object]) -> None:
    for record in records:
        name = record.key.decode()  # type: ignore[attr-defined]
        value = record.value  # type: ignore[attr-defined]
        if value is None:
            state.pop(name, None)
        else:
            state[name] = Versions.from_json(loads_object(value))


async def write_versions(bootstrap: str, updates: Mapping[str, Versions]) -> None:
    """Record projections' versions (name -> versions), in order, through one producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(
                PROJECTION_VERSIONS.name, key=name.encode(), value=dumps(versions.to_json())
            )
            for name, versions in updates.items()
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class GroupLag:
    """How far a consumer group is through the raw log, per partition: (committed, head)."""

    partitions: dict[int, tuple[int, int]]
    members: int

    @property
    def done(self) -> int:
        return sum(min(c, h) for c, h in self.partitions.values())

    @property
    def total(self) -> int:
        return sum(h for _, h in self.partitions.values())

    @property
    def behind(self) -> int:
        return self.total - self.done

    @property
    def started(self) -> bool:
        return any(c for c, _ in self.partitions.values())


class Position:
    """Reads where groups are in the raw log; also deletes a retired version's group and topics."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def __aenter__(self) -> Position:
        await self.admin.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.consumer.stop()
        except asyncio.CancelledError:
            # aiokafka's consumer can raise its own cancelled internal task from stop().
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        finally:
            await self.admin.close()

    async def head(self) -> dict[int, int]:
        partitions = await partition_ids(self.admin, RAW_WEBHOOKS.name)
        tps = [TopicPartition(RAW_WEBHOOKS.name, p) for p in partitions]
        return {
            tp.partition: offset for tp, offset in (await self.consumer.end_offsets(tps)).items()
        }

    async def lag(self, group: str, head: dict[int, int] | None = None) -> GroupLag:
        head = head if head is not None else await self.head()
        try:
            committed = await self.admin.list_consumer_group_offsets(group)
        except COORDINATOR_NOT_YET:
            committed = {}
        offsets = {
            tp.partition: meta.offset
            for tp, meta in committed.items()
            if tp.topic == RAW_WEBHOOKS.name and meta.offset >= 0
        }
        return GroupLag(
            {p: (offsets.get(p, 0), h) for p, h in head.items()}, await self.members(group)
        )

    async def members(self, group: str) -> int:
        try:
            responses: list[Any] = await self.admin.describe_consumer_groups([group])
        except COORDINATOR_NOT_YET:
            return 0
        # Raw DescribeGroups responses: each group is (error, id, state, protocol type,
        # protocol, members, ...) in every protocol version.
        return sum(len(g[5]) for r in responses for g in r.groups if g[1] == group)

    async def topics(self, prefix: str) -> list[str]:
        return sorted(t for t in await self.admin.list_topics() if t.startswith(prefix))

    async def delete(self, group: str, topic_prefix: str) -> list[str]:
        """Delete `group` and every topic named `topic_prefix...`; return the topics deleted."""
        topics = await self.topics(topic_prefix)
        if topics:
            await self.admin.delete_topics(topics)
        # aiokafka's admin client has no call for DeleteGroups (KIP-229); the request it has.
        coordinator = await self.admin.find_coordinator(group)
        response: Any = await self.admin._send_request(DeleteGroupsRequest([group]), coordinator)
        for _, error in response.results:
            if error not in (0, GROUP_ID_NOT_FOUND):
                raise RuntimeError(f"deleting consumer group {group}: Kafka error code {error}")
        return topics

    async def wait_empty(self, group: str, timeout: float) -> bool:
        """Wait until no worker is a member of `group`; False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.members(group):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(1.0)
        return True
