"""Row 1, the ceiling: a bare aiokafka consumer that reads and JSON-decodes every raw record of
the pre-filled topic and does nothing else."""

from __future__ import annotations

import time

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.common import PARTITIONS
from streams.topics import RAW_WEBHOOKS

__all__ = ["ceiling"]


async def ceiling(bootstrap: str, records: int) -> float:
    """Records per second from offset 0 until `records` were read and decoded."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(RAW_WEBHOOKS.name, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < records:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for partition_records in batch.values():
                for record in partition_records:
                    orjson.loads(record.value)
                seen += len(partition_records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()
