"""HighLevel's side of the integration tests: signed webhooks posted to running workers (one at a
time, or thousands in log order with HighLevel's retries), the queries and the Ably-compatible
server's view that tests check them against."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.app import APP_ID
from streams.codec import loads
from streams.ingest import wait_consumed
from streams.topics import DERIVED, DLQ, RAW_WEBHOOKS, raw_key
from tests.integration.processes import REPO, Worker, http
from tests.integration.services import TEST_PARTITIONS, AblyServer

__all__ = [
    "API_TOKEN",
    "JWT_SECRET",
    "SIGNING_KEY",
    "Delivery",
    "ably_messages",
    "dead_letter_for",
    "deliver",
    "derived_records",
    "personal_data",
    "post_webhook",
    "query",
    "raw_log_size",
    "raw_webhook_ids",
    "read_topic",
    "record_figures",
    "signature",
    "standin_stats",
    "webhook_env",
]

SIGNING_KEY = Ed25519PrivateKey.generate()
API_TOKEN = "test-api-token"
JWT_SECRET = "a-test-app-secret-at-least-32-bytes"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# International numbers, or North American ones written with separators (dates and amounts are
# not phone numbers).
_PHONE = re.compile(r"\+\d[\d\s().-]{6,}\d|\(?\b\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}\b")


def webhook_env(kafka: str, ably: AblyServer, replication: int = 1) -> dict[str, str]:
    public_pem = (
        SIGNING_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return {
        "STREAMS_KAFKA_BOOTSTRAP": kafka,
        "STREAMS_PARTITIONS": str(TEST_PARTITIONS),
        "STREAMS_REPLICATION_FACTOR": str(replication),
        "GHL_WEBHOOK_ED25519_PUBLIC_KEY": public_pem,
        "ABLY_API_KEY": ably.key,
        "ABLY_ENDPOINT": f"http://{ably.address}",
        "STREAMS_API_TOKEN": API_TOKEN,
        "STREAMS_APP_JWT_SECRET": JWT_SECRET,
        # Every test's workers stop for good: the next test's need not wait for their sessions.
        "STREAMS_LEAVE_GROUP_ON_STOP": "1",
    }


def signature(body: bytes) -> str:
    return base64.b64encode(SIGNING_KEY.sign(body)).decode()


def post_webhook(worker: Worker, payload: dict[str, Any], *, sign: bool = True) -> tuple[int, Any]:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        headers["X-GHL-Signature"] = signature(body)
    return http("POST", f"{worker.url}/webhooks/ghl", body, headers)


def query(worker: Worker, location: str, kind: str, token: str | None = API_TOKEN) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http("GET", f"{worker.url}/v1/locations/{location}/{kind}", headers=headers)


@dataclass
class Delivery:
    """What HighLevel saw while delivering: bodies acknowledged with 200, and every other
    answer (status, 0 for no answer) it retried."""

    accepted: int = 0
    retried: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def deliver(
    bodies: list[dict[str, Any]],
    targets: Callable[[], list[str]],
    delivery: Delivery | None = None,
    *,
    timeout: float = 600,
    pause: float = 0.2,
) -> Delivery:
    """Post every body, signed, as HighLevel does: no answer or a 5xx is retried (on the next
    worker URL that `targets()` names) until it is accepted; any other answer fails the test. Each location's bodies go one after
    another, in order, so the log order per location is the list's; locations go in parallel."""
    delivery = delivery or Delivery()
    per_location: dict[bytes | None, list[bytes]] = defaultdict(list)
    for body in bodies:
        per_location[raw_key(body)].append(json.dumps(body).encode())
    deadline = time.monotonic() + timeout
    errors: list[str] = []

    def post_in_order(raws: list[bytes]) -> None:
        attempt = 0
        for raw in raws:
            headers = {"Content-Type": "application/json", "X-GHL-Signature": signature(raw)}
            while True:
                urls = targets()  # round robin over the workers named now
                attempt += 1
                url = urls[attempt % len(urls)]
                status, answer = http("POST", f"{url}/webhooks/ghl", raw, headers)
                if status == 200:
                    with delivery.lock:
                        delivery.accepted += 1
                    break
                with delivery.lock:
                    delivery.retried[status] += 1
                if status not in (0, 502, 503, 504) or time.monotonic() > deadline:
                    errors.append(f"{status}: {answer}")
                    return
                time.sleep(pause)

    threads = [
        threading.Thread(target=post_in_order, args=(raws,)) for raws in per_location.values()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    return delivery


async def raw_log_size(kafka: str, partitions: int = TEST_PARTITIONS) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        topic_partitions = [TopicPartition(RAW_WEBHOOKS.name, p) for p in range(partitions)]
        return sum((await consumer.end_offsets(topic_partitions)).values())
    finally:
        await consumer.stop()


async def dead_letter_for(
    kafka: str, webhook_id: str | None = None, value: bytes | None = None
) -> dict[str, bytes]:
    """The headers of the dead letter with this webhook id (or these exact bytes)."""
    consumer = AIOKafkaConsumer(
        DLQ.name,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        group_id=f"dlq-reader-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while True:
                record = await consumer.getone()
                headers = dict(record.headers)
                if (
                    webhook_id is not None and headers.get("webhook-id") == webhook_id.encode()
                ) or (value is not None and record.value == value):
                    return headers
    finally:
        await consumer.stop()


def ably_messages(ably: AblyServer, prefix: str = "") -> list[dict[str, Any]]:
    """What a subscriber of each channel would have seen (de-duplicated by message id), for the
    channels whose id part starts with `prefix`."""
    status, messages = http("GET", f"http://{ably.address}/_standin/messages")
    assert status == 200, messages
    return [m for m in messages if m["channel"].split(":", 1)[-1].startswith(prefix)]


def personal_data(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages on location channels whose data carries an e-mail address or phone number."""
    return [
        m
        for m in messages
        if m["channel"].startswith("location:")
        and (_EMAIL.search(json.dumps(m["data"])) or _PHONE.search(json.dumps(m["data"])))
    ]


def standin_stats(ably: AblyServer) -> dict[str, int]:
    status, stats = http("GET", f"http://{ably.address}/_standin/stats")
    assert status == 200, stats
    return {k: v for k, v in stats.items() if isinstance(v, int)}


async def read_topic(kafka: str, topic: str) -> list[Any]:
    """Every committed record now in `topic` (its TEST_PARTITIONS partitions), from the
    beginning: the workers write derived events and dead letters in transactions."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(TEST_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Any] = []
        async with asyncio.timeout(120):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                batch = await consumer.getmany(timeout_ms=1000)
                found.extend(record for records in batch.values() for record in records)
        return found
    finally:
        await consumer.stop()


async def derived_records(kafka: str, prefix: str) -> list[dict[str, Any]]:
    """Every derived event on `streams.derived.v1` (re-emissions included) for the channels
    whose id part starts with `prefix`."""
    return [
        loads(record.value)
        for record in await read_topic(kafka, DERIVED.name)
        if (record.key or b"").decode().split(":", 1)[-1].startswith(prefix)
    ]


def committed_twice(emitted: list[dict[str, Any]]) -> list[str]:
    """The ids of derived events the log holds more than once (exactly once: none). Where the
    exactly-once of delivery is checked: the Ably stand-in, as Ably, drops a repeated id, so a
    worker that emitted an event twice would look right to a subscriber."""
    return [i for i, n in Counter(e["id"] for e in emitted).items() if n > 1]


async def raw_webhook_ids(kafka: str) -> Counter[str]:
    """How many times each webhook id is in the raw log."""
    return Counter(
        dict(record.headers).get("webhook-id", b"").decode()
        for record in await read_topic(kafka, RAW_WEBHOOKS.name)
    )


def record_figures(test: str, **figures: object) -> None:
    """Print a fault test's figures and keep them in .build/reliability-figures.jsonl."""
    line = json.dumps({"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **figures})
    print(line)
    path = REPO / ".build" / "reliability-figures.jsonl"
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as out:
        out.write(line + "\n")


async def consumed_after(kafka: str, timeout: float = 1200) -> float:
    """Seconds until the live worker group has committed past the raw log's current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        partitions = [TopicPartition(RAW_WEBHOOKS.name, p) for p in range(TEST_PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    last = {tp.partition: end - 1 for tp, end in ends.items() if end}
    return await wait_consumed(kafka, APP_ID, last, timeout=timeout)
