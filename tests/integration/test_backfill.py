"""Backfill from FerretDB into the real broker: a realistic legacy collection, part of it already
delivered live, a run killed half way and run again. Every webhook lands in the log exactly once,
the projections equal the reference, and the Ably-compatible server hears nothing of it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from streams.codec import dumps
from streams.events import event_type
from streams.ingress.raw_log import Incoming, RawLog
from streams.topics import RAW_WEBHOOKS, ensure_topics
from tests.integration.processes import REPO, http, start_worker, wait_for
from tests.integration.services import TEST_PARTITIONS, AblyServer
from tests.integration.webhooks import derived_records, raw_log_size
from tests.traffic import expected, format_minor, generate


def legacy_document(index: int, body: dict[str, Any]) -> dict[str, Any]:
    received = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=index)
    stored_as_text = index % 10 == 0  # some old rows kept the raw JSON text
    return {
        "body": json.dumps(body) if stored_as_text else body,
        "type": event_type(body),
        "webhookId": body["webhookId"],
        "receivedAt": received,
    }


async def log_counts(kafka: str, prefix: str) -> dict[str, int]:
    """How many times each webhook id with `prefix` is in the raw log, and its sources."""
    consumer = AIOKafkaConsumer(
        RAW_WEBHOOKS.name,
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"count-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    counts: dict[str, int] = {}
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    webhook = dict(record.headers).get("webhook-id", b"").decode()
                    if webhook.startswith(prefix):
                        counts[webhook] = counts.get(webhook, 0) + 1
    finally:
        await consumer.stop()
    return counts


async def test_backfill_is_exact_resumable_and_silent(
    kafka_bootstrap: str, mongodb_uri: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    prefix = f"bf{uuid.uuid4().hex[:6]}-"
    bodies = generate(1500, locations=3, prefix=prefix)
    unique_ids = {b["webhookId"] for b in bodies}
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri)
    collection = client["legacy"][f"webhooks_{prefix.strip('-')}"]
    await collection.insert_many([legacy_document(i, b) for i, b in enumerate(bodies)])
    await collection.insert_one({"body": None, "webhookId": "broken"})  # unusable row
    await client.close()

    await ensure_topics(kafka_bootstrap, partitions=TEST_PARTITIONS, replication_factor=1)
    # The last 100 reached the log before the backfill (imported from an export, say).
    async with RawLog(kafka_bootstrap) as raw_log:
        already = {b["webhookId"]: b for b in bodies[-100:]}  # once each: redeliveries repeat
        await raw_log.append_many(
            [Incoming(dumps(b), b, webhook_id=w) for w, b in already.items()],
            source="import",
            signature="trusted",
        )

    env = {
        **os.environ,
        "STREAMS_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAMS_DATA_DIR": str(tmp_path / "backfill"),
        "STREAMS_PARTITIONS": str(TEST_PARTITIONS),
        "STREAMS_REPLICATION_FACTOR": "1",
    }
    command = [
        str(REPO / ".venv/bin/streams"),
        "backfill",
        "mongo",
        "--uri",
        mongodb_uri,
        "--db",
        "legacy",
        "--collection",
        collection.name,
    ]
    checkpoint = tmp_path / "backfill" / "backfill" / f"legacy.{collection.name}.json"

    # One document per batch makes the run slow enough to kill half way.
    logged_before = await raw_log_size(kafka_bootstrap)
    first = subprocess.Popen(
        [*command, "--batch-size", "1"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert wait_for(checkpoint.exists, timeout=60, interval=0.01)
    # At least 50 documents written (not a fixed sleep: a loaded machine is slower), then kill
    # it mid-stream.
    for _ in range(600):
        if await raw_log_size(kafka_bootstrap) - logged_before >= 50 or first.poll() is not None:
            break
        await asyncio.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL, "the first run finished before it could be killed"
    half = await log_counts(kafka_bootstrap, prefix)
    assert 100 < len(half) < len(unique_ids)

    dry = subprocess.run(
        [*command, "--dry-run"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert dry.returncode == 0, dry.stderr
    assert await log_counts(kafka_bootstrap, prefix) == half  # a dry run writes nothing

    second = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "1 unusable" in second.stdout, second.stdout
    assert "backfill [" in second.stderr  # the progress line

    counts = await log_counts(kafka_bootstrap, prefix)
    assert set(counts) == unique_ids
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v > 1}

    # The projections over the backfilled history equal the reference.
    worker = start_worker(
        {
            "STREAMS_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "STREAMS_PARTITIONS": str(TEST_PARTITIONS),
            "STREAMS_REPLICATION_FACTOR": "1",
            "ABLY_API_KEY": ably_server.key,
            "ABLY_ENDPOINT": f"http://{ably_server.address}",
        },
        tmp_path / "worker",
    )
    try:
        worker.wait_healthy()
        # Projections follow log order: what was in the log first, then the history behind it.
        log_order = list(already.values()) + [b for b in bodies if b["webhookId"] not in already]
        for location, want in expected(log_order).items():
            revenue = {key: format_minor(minor, key[1]) for key, minor in want["revenue"].items()}

            def answered(location: str = location, revenue: dict = revenue) -> bool:
                status, answer = http("GET", f"{worker.url}/v1/locations/{location}/revenue")
                return (
                    status == 200
                    and {(d["date"], d["currency"]): d["amount"] for d in answer["days"]} == revenue
                )

            assert wait_for(answered, timeout=90), http(
                "GET", f"{worker.url}/v1/locations/{location}/revenue"
            )

            # Each family is its own agent: revenue being there says nothing of the others.
            def unread(location: str = location) -> Any:
                return http("GET", f"{worker.url}/v1/locations/{location}/unread")[1]

            def leads(location: str = location) -> dict[str, int]:
                answer = http("GET", f"{worker.url}/v1/locations/{location}/leads")[1]
                return {d["date"]: d["count"] for d in answer["days"]}

            assert wait_for(lambda w=want: unread()["conversations"] == w["unread"]), unread()
            assert wait_for(lambda w=want: leads() == w["leads"]), leads()
    finally:
        worker.stop()  # its last transaction committed: the log holds all it derived

    # History notifies nobody: the worker derived no event of these locations (so there is
    # nothing for the publisher to send, however long one waits), and none reached a channel.
    derived = [
        e
        for e in await derived_records(kafka_bootstrap, "")
        if prefix in e["channel"]
        or str((e.get("data") or {}).get("location_id")).startswith(prefix)
    ]
    assert derived == []
    status, messages = http("GET", f"http://{ably_server.address}/_standin/messages")
    assert status == 200
    assert [m["channel"] for m in messages if prefix in m["channel"]] == []
