"""The containerised Kafka broker, through aiokafka: the protocol our ingress and runtime speak."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streams.topics import RAW_WEBHOOKS, TOPICS, ensure_topics
from tests.integration.services import TEST_PARTITIONS, start_kafka


async def test_produce_and_consume_keeps_bytes_keys_headers_and_order(kafka_bootstrap: str) -> None:
    topic = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    sent = [(f"loc-{i % 3}".encode(), f'{{"n": {i}}}'.encode()) for i in range(50)]
    try:
        for key, value in sent:
            await producer.send_and_wait(
                topic, value, key=key, headers=[("webhook-id", key + b"-" + value)]
            )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received = []
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                record = await consumer.getone()
                received.append((record.key, record.value, dict(record.headers)["webhook-id"]))
    finally:
        await consumer.stop()
    assert [(k, v) for k, v, _ in received] == sent  # one partition: log order is send order
    assert all(h == k + b"-" + v for k, v, h in received)


async def test_ensure_topics_creates_the_raw_log_kept_forever_once() -> None:
    kafka = await start_kafka()  # a broker of its own: the session's has every topic already
    try:
        first = await ensure_topics(kafka.address, partitions=TEST_PARTITIONS, replication_factor=1)
        again = await ensure_topics(kafka.address, partitions=TEST_PARTITIONS, replication_factor=1)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.address)
        await admin.start()
        try:
            [described] = await admin.describe_topics([RAW_WEBHOOKS.name])
            [configs] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, RAW_WEBHOOKS.name)]
            )
        finally:
            await admin.close()
    finally:
        kafka.stop()
    assert sorted(first) == sorted(t.name for t in TOPICS)
    assert again == []
    assert len(described["partitions"]) == TEST_PARTITIONS
    values = {name: value for name, value, *_ in configs.resources[0][4]}
    assert values["retention.ms"] == "-1"
    assert values["retention.bytes"] == "-1"
    assert values["cleanup.policy"] == "delete"
