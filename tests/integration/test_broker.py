"""The three-node local cluster (replication 3, min ISR 2) for fault tests: acknowledged writes
survive one node going down, and writes keep being accepted while two of three are up."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.broker import LocalKafka, recorded_bootstrap
from streams.settings import Settings


async def test_three_node_cluster_keeps_acknowledged_writes_with_one_node_down(
    tmp_path: Path,
) -> None:
    cluster = LocalKafka(tmp_path / "cluster", libs=Settings.from_env({}).kafka_libs, nodes=3)
    cluster.start()
    try:
        await cluster.wait_ready()
        assert recorded_bootstrap(tmp_path / "cluster") == cluster.bootstrap
        topic = f"rf3-{uuid.uuid4().hex[:8]}"
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        await admin.start()
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=3,
                    replication_factor=3,
                    topic_configs={"min.insync.replicas": "2"},
                )
            ]
        )
        [described] = await admin.describe_topics([topic])
        await admin.close()
        assert all(len(p["replicas"]) == 3 for p in described["partitions"])

        producer = AIOKafkaProducer(
            bootstrap_servers=cluster.bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=60000,
        )
        await producer.start()
        try:
            for i in range(100):
                await producer.send_and_wait(topic, str(i).encode(), key=str(i % 7).encode())
            cluster.stop_node(2, kill=True)
            async with asyncio.timeout(90):
                for i in range(100, 200):
                    await producer.send_and_wait(topic, str(i).encode(), key=str(i % 7).encode())
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=cluster.bootstrap,
            group_id=f"g-{topic}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        seen: set[int] = set()
        try:
            async with asyncio.timeout(90):
                while len(seen) < 200:
                    batch = await consumer.getmany(timeout_ms=1000)
                    seen.update(int(r.value) for rs in batch.values() for r in rs)
        finally:
            await consumer.stop()
        assert seen == set(range(200))
    finally:
        cluster.stop()
