"""A version's tables as their changelog topics hold them, and how two versions differ."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.codec import loads
from streams.topics import partition_ids

__all__ = ["changelog_topic", "differences", "read_table"]


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"  # Faust's naming


async def read_table(bootstrap: str, topic: str) -> dict[bytes, Any]:
    """Every key's latest value in a compacted changelog (deleted keys left out); {} when the
    topic does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ids = await partition_ids(admin, topic)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in ids]
        if not partitions:
            return {}
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        table: dict[bytes, Any] = {}
        for tp in partitions:
            while await consumer.position(tp) < end[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.value is None:
                        table.pop(record.key, None)
                    else:
                        table[record.key] = loads(record.value)
        return table
    finally:
        await consumer.stop()


def differences(name: str, a: dict[bytes, Any], b: dict[bytes, Any], limit: int = 10) -> list[str]:
    """Up to `limit` readable differences between two versions of table `name`."""
    found = []
    for key in sorted(a.keys() | b.keys()):
        if a.get(key) != b.get(key):
            found.append(
                f"{name}[{key.decode(errors='replace')}]: {a.get(key)!r} != {b.get(key)!r}"
            )
            if len(found) == limit:
                break
    return found
