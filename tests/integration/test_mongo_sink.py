"""The MongoDB sink against a real broker and a real MongoDB-compatible server (FerretDB): the
read models equal the HTTP answers after a live stream, a kill -9 of the worker mid-stream and
30 s of MongoDB frozen while webhooks keep arriving; a replayed version gets collections of its
own, the alias switches to it on promote, and a dropped version's collections go."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from streams.app import APP_ID
from streams.mongo_sink.cli import sink_lag
from streams.mongo_sink.documents import READ_MODELS
from streams.mongo_sink.pending import Writes
from streams.mongo_sink.writer import POSITIONS, ReadModelWriter, position_id
from streams.runtime.changelog import changelog_topic
from streams.settings import Secret
from streams.tables.registry import PROJECTIONS
from streams.topics import RAW_WEBHOOKS, ensure_changelog, ensure_topics
from tests.integration.processes import REPO, Worker, http, start_worker
from tests.integration.services import TEST_PARTITIONS, AblyServer, start_ferretdb, start_kafka
from tests.integration.webhooks import deliver, query, record_figures, webhook_env
from tests.traffic import generate

PROGRAM = [sys.executable, "-m", "streams.cli"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROGRAM, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )


async def read_model(db: Any, name: str) -> dict[str, list[dict[str, Any]]]:
    """Location -> the documents of read model `name`, from the collection its alias names."""
    projection = next(m.projection for m in READ_MODELS if m.collection == name)
    alias = await db["read_models"].find_one({"_id": projection})
    if alias is None:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    async for doc in db[alias["collections"][name]].find():
        out.setdefault(doc["location_id"], []).append(doc)
    return out


async def mismatches(worker: Worker, db: Any, locations: list[str]) -> list[str]:
    """Where a read model differs from the worker's HTTP answer (empty: all equal)."""
    models = {
        name: await read_model(db, name)
        for name in (
            "revenue_days",
            "unread_conversations",
            "unread_locations",
            "leads_days",
            "pipeline_stages",
            "pipeline_won_days",
            "appointments",
        )
    }
    now = datetime.now(UTC)
    wrong = []
    for location in locations:
        answers = {
            kind: query(worker, location, kind)
            for kind in ("revenue", "unread", "leads", "pipeline", "appointments")
        }
        if any(status != 200 for status, _ in answers.values()):
            return [f"{location}: not answered yet"]
        got = {name: rows.get(location, []) for name, rows in models.items()}
        revenue, unread = answers["revenue"][1], answers["unread"][1]
        leads, pipeline = answers["leads"][1], answers["pipeline"][1]
        checks = {
            "revenue_days": (
                sorted((d["date"], d["currency"], d["amount"]) for d in got["revenue_days"]),
                [(d["date"], d["currency"], d["amount"]) for d in revenue["days"]],
            ),
            "unread_conversations": (
                {d["conversation_id"]: d["unread"] for d in got["unread_conversations"]},
                unread["conversations"],
            ),
            "unread_locations": (
                [(d["total"], d["users"]) for d in got["unread_locations"]] or [(0, {})],
                [(unread["total"], unread["users"])],
            ),
            "leads_days": (
                sorted((d["date"], d["count"]) for d in got["leads_days"]),
                [(d["date"], d["count"]) for d in leads["days"]],
            ),
            "pipeline_stages": (
                sorted(
                    (d["pipeline_id"], d["stage_id"], d["open_count"], d["open_value"])
                    for d in got["pipeline_stages"]
                ),
                [
                    (s["pipeline_id"], s["stage_id"], s["open_count"], s["open_value"])
                    for s in pipeline["stages"]
                ],
            ),
            "pipeline_won_days": (
                sorted((d["date"], d["value"]) for d in got["pipeline_won_days"]),
                [(w["date"], w["value"]) for w in pipeline["won"]],
            ),
            "appointments": (
                sorted(
                    (d["appointment_id"], d["start_time"], d["status"], sorted(d["users"]))
                    for d in got["appointments"]
                    if d["starts_at"] > now
                ),
                _upcoming(answers["appointments"][1]),
            ),
        }
        wrong += [f"{location} {name}: {a} != {b}" for name, (a, b) in checks.items() if a != b]
    return wrong


def _upcoming(answer: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    """(id, start, status, users) of each appointment an appointments answer lists."""
    users: dict[str, list[str]] = {}
    entries: dict[str, dict[str, Any]] = {}
    for user, listed in answer["users"].items():
        for entry in listed:
            entries[entry["appointment_id"]] = entry
            users.setdefault(entry["appointment_id"], []).append(user)
    return sorted((i, e["start_time"], e["status"], sorted(users[i])) for i, e in entries.items())


def upcoming_appointments(locations: list[str], tag: str) -> list[dict[str, Any]]:
    """Two appointments a location, starting in the coming days (the generated traffic's are
    all in March 2026, long past: without these, the upcoming ones would be none on both sides)."""
    soon = datetime.now(UTC).replace(microsecond=0)
    return [
        {
            "type": "AppointmentCreate",
            "locationId": location,
            "appointment": {
                "id": f"{location}-{tag}-soon{n}",
                "assignedUserId": f"{tag}-user{n}",
                "startTime": (soon + timedelta(days=n + 1)).isoformat().replace("+00:00", "Z"),
                "appointmentStatus": "confirmed",
            },
        }
        for location in locations
        for n in range(2)
    ]


async def test_read_models_stay_exact_through_a_kill_an_outage_and_a_promote(
    ably_server: AblyServer, tmp_path: Path
) -> None:
    kafka_service = await start_kafka()  # its own log: the sink reads exactly this test's
    mongo_service = await start_ferretdb()  # its own server: this test freezes it
    kafka, uri = kafka_service.address, mongo_service.address
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = client["readmodels"]
    worker = None
    try:
        await ensure_topics(kafka, partitions=TEST_PARTITIONS, replication_factor=1)
        tag = uuid.uuid4().hex[:6]
        bodies = generate(900, locations=4, prefix=f"m{tag}", pipeline=True)
        locations = sorted({b["locationId"] for b in bodies if "locationId" in b})
        soon = upcoming_appointments(locations, tag)  # one in each of the three stretches below
        bodies = [*bodies[:150], *soon[:3], *bodies[150:450], *soon[3:6], *bodies[450:], *soon[6:]]
        env = webhook_env(kafka, ably_server) | {
            "STREAMS_MONGO_SINK_URI": uri,
            "STREAMS_MONGO_SINK_DB": "readmodels",
        }
        worker = start_worker(env, tmp_path / "worker")
        worker.wait_healthy()

        # A kill -9 while the sink writes: the restarted worker's sink goes on from its replica.
        deliver(bodies[:300], lambda: [worker.url])  # type: ignore[union-attr]
        worker.kill()
        worker = start_worker(env, tmp_path / "worker", port=worker.port)
        worker.wait_healthy()

        # MongoDB frozen for 30 s while webhooks keep arriving: the worker is not held back.
        frozen = mongo_service.container.get_wrapped_container()
        frozen.pause()
        started = time.monotonic()
        try:
            deliver(bodies[300:600], lambda: [worker.url])  # type: ignore[union-attr]
            time.sleep(max(0.0, 30 - (time.monotonic() - started)))
        finally:
            frozen.unpause()
        deliver(bodies[600:], lambda: [worker.url])  # type: ignore[union-attr]

        async def caught_up() -> list[str]:
            return await mismatches(worker, db, locations)  # type: ignore[arg-type]

        wrong = await caught_up()
        deadline = time.monotonic() + 120
        while wrong and time.monotonic() < deadline:
            await asyncio.sleep(1)
            wrong = await caught_up()
        positions = await db["sink_positions"].find().to_list()
        assert wrong == [], (wrong[:5], positions, worker.tail(3000))
        upcoming = sum(query(worker, loc, "appointments")[1]["total"] for loc in locations)
        assert upcoming == len(soon), upcoming  # compared above, and not none on both sides
        lag = await sink_lag(kafka, Secret(uri), "readmodels", (), PROJECTIONS)
        assert lag and all(row["lag_records"] == 0 for row in lag), lag
        # The gauges are sampled once a second: the next sample after catching up says 0.
        settled = 'streams_mongo_sink_lag_records{projection="revenue",version="1"} 0'
        metrics = http("GET", f"{worker.url}/metrics")[1]
        deadline = time.monotonic() + 5
        while settled not in metrics and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            metrics = http("GET", f"{worker.url}/metrics")[1]
        assert "streams_mongo_sink_errors_total" in metrics, "the outage was not noticed"
        assert settled in metrics, metrics
        record_figures("mongo_sink", documents=await db["revenue_days_v1"].count_documents({}))

        # A replayed version writes its own collections; promote switches the alias, and drop
        # removes them once another version answers.
        cli_env = {**os.environ, **env, "STREAMS_DATA_DIR": str(tmp_path / "cli")}
        started_replay = cli(
            cli_env, "replay", "start", "--projection", "revenue", "--version", "2", "--wait"
        )
        assert started_replay.returncode == 0, started_replay.stderr

        async def v2_written() -> int:
            return await db["revenue_days_v2"].count_documents({})

        want = await db["revenue_days_v1"].count_documents({})
        assert await _eventually(lambda: v2_written(), want), "version 2 was not written"
        promoted = cli(cli_env, "replay", "promote", "--projection", "revenue", "--version", "2")
        assert promoted.returncode == 0, promoted.stderr

        async def alias() -> str | None:
            named = await db["read_models"].find_one({"_id": "revenue"})
            return named and named["collections"]["revenue_days"]

        assert await _eventually(alias, "revenue_days_v2")
        assert await mismatches(worker, db, locations) == []
        back = cli(cli_env, "replay", "promote", "--projection", "revenue", "--version", "1")
        assert back.returncode == 0, back.stderr
        assert await _eventually(alias, "revenue_days_v1")
        dropped = cli(cli_env, "replay", "drop", "--projection", "revenue", "--version", "2")
        assert dropped.returncode == 0, dropped.stderr

        async def collections() -> bool:
            return "revenue_days_v2" not in await db.list_collection_names()

        assert await _eventually(collections, True)
        status = cli(cli_env, "sink", "status")
        assert status.returncode == 0, status.stderr
        assert "revenue_days_v1" in status.stdout and "revenue_days_v2" not in status.stdout
    finally:
        if worker is not None:
            worker.stop()
        await client.close()
        mongo_service.stop()
        kafka_service.stop()


async def _eventually(check: Any, want: Any, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check() == want:
            return True
        await asyncio.sleep(0.5)
    return False


async def test_a_new_document_already_there_is_written_only_if_older(mongodb_uri: str) -> None:
    """The writer inserts the documents its replica says MongoDB lacks; one that is there after
    all (another sink wrote it meanwhile) is replaced if older and left if newer, as a guarded
    upsert would, and the rest of its bulk is inserted."""
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri)
    db = client[f"writer{uuid.uuid4().hex[:8]}"]
    writer = ReadModelWriter(db)
    collection, index = "unread_locations_v1", {"unread_locations_v1": ("location_id",)}

    def new(*counts: tuple[str, int]) -> dict[str, Writes]:
        docs = {loc: {"location_id": loc, "unread": n} for loc, n in counts}
        return {collection: Writes(inserts=docs)}

    async def held() -> dict[str, tuple[int, int]]:
        return {d["_id"]: (d["unread"], d["_offset"]) async for d in db[collection].find()}

    try:
        await writer.write("changelog", 0, 11, new(("a", 1)), index)  # "a" at offset 10
        await writer.write("changelog", 0, 6, new(("a", 2), ("b", 2)), index)  # older
        assert await held() == {"a": (1, 10), "b": (2, 5)}
        await writer.write("changelog", 0, 21, new(("a", 3), ("c", 3)), index)  # newer
        assert await held() == {"a": (3, 20), "b": (2, 5), "c": (3, 20)}
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_sink_status_counts_what_mongodb_does_not_reflect_yet(
    kafka_bootstrap: str, mongodb_uri: str
) -> None:
    """`streams sink status` (sink_lag) against a changelog holding records MongoDB has no
    position for, then with MongoDB's positions at the changelog's ends."""
    await ensure_topics(kafka_bootstrap, partitions=TEST_PARTITIONS, replication_factor=1)
    topic = changelog_topic(APP_ID)
    await ensure_changelog(kafka_bootstrap, topic, source=RAW_WEBHOOKS.name, replication_factor=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, b"{}", key=f"probe-{n}".encode(), partition=0)
    finally:
        await producer.stop()
    database = f"status{uuid.uuid4().hex[:8]}"
    client: AsyncMongoClient = AsyncMongoClient(mongodb_uri)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(TEST_PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        lag = await sink_lag(kafka_bootstrap, Secret(mongodb_uri), database, (), PROJECTIONS)
        assert lag and {row["lag_records"] for row in lag} == {sum(ends.values())}, lag
        assert all(row["lag_seconds"] > 0 for row in lag), lag  # its oldest record's age

        positions = client[database][POSITIONS]
        for tp, end in ends.items():
            doc = {"topic": topic, "partition": tp.partition, "offset": end}
            await positions.insert_one({"_id": position_id(topic, tp.partition), **doc})
        lag = await sink_lag(kafka_bootstrap, Secret(mongodb_uri), database, (), PROJECTIONS)
        assert {(row["lag_records"], row["lag_seconds"]) for row in lag} == {(0, 0.0)}, lag
    finally:
        await consumer.stop()
        await client.drop_database(database)
        await client.close()
