"""Replay against a real broker: every projection recomputed as version 2 from offset 0 while
live webhooks keep arriving, equal to version 1 key for key, promoted, answering queries; a
premature promote refused; a projection defined only in this test computed over all history; a
retired version dropped; and nothing of it reaches the Ably-compatible server."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.codec import dumps, loads
from streams.ingest import wait_consumed
from streams.ingress.raw_log import Incoming, RawLog
from streams.replay.control import Position
from streams.replay.versions import run_id, unit_id
from streams.runtime.changelog import read_changelog
from streams.tables.registry import PROJECTIONS
from streams.topics import DERIVED, ensure_topics
from tests.integration.processes import REPO, Worker, http, start_worker, wait_for
from tests.integration.revenue_by_rep import REP_REVENUE, expected_by_rep
from tests.integration.services import TEST_PARTITIONS, AblyServer, start_kafka
from tests.integration.webhooks import API_TOKEN, post_webhook, webhook_env
from tests.traffic import expected, format_minor, generate

# The `streams` command of a build that adds the test's projection (see revenue_by_rep.py).
PROGRAM = [sys.executable, "-m", "tests.integration.revenue_by_rep"]
LIVE_PROJECTIONS = ("revenue", "unread", "leads")
ALL_V2 = run_id([], 2, every=True)  # the run of `replay start --projection all --version 2`


def cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROGRAM, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def versioned_query(worker: Worker, location: str, kind: str) -> tuple[str | None, Any]:
    """(the version that answered, the answer)."""
    request = urllib.request.Request(
        f"{worker.url}/v1/locations/{location}/{kind}",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.headers.get("Streams-Projection-Version"), loads(response.read())


async def head(kafka: str) -> dict[int, int]:
    async with Position(kafka) as position:
        return await position.head()


async def derived_since(kafka: str, start: dict[int, int]) -> list[dict[str, Any]]:
    """Derived events written after the offsets `start` (per partition of the derived topic)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(DERIVED.name, p) for p in range(TEST_PARTITIONS)]
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        events = []
        for tp in partitions:
            consumer.seek(tp, start.get(tp.partition, 0))
            while await consumer.position(tp) < end[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    events.append(loads(record.value))
        return events
    finally:
        await consumer.stop()


async def derived_head(kafka: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        partitions = [TopicPartition(DERIVED.name, p) for p in range(TEST_PARTITIONS)]
        return {tp.partition: o for tp, o in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def consumed_by(kafka: str, groups: list[str]) -> None:
    """Wait until every group has committed everything now in the raw log."""
    last = {p: offset - 1 for p, offset in (await head(kafka)).items() if offset}
    for group in groups:
        await wait_consumed(kafka, group, last, timeout=600)


async def test_replay_promote_new_projection_and_drop(
    ably_server: AblyServer, tmp_path: Path
) -> None:
    # Its own broker: the log holds exactly this test's history, whatever ran before.
    service = await start_kafka()
    kafka = service.address
    worker = None
    try:
        await ensure_topics(kafka, partitions=TEST_PARTITIONS, replication_factor=1)
        tag = uuid.uuid4().hex[:6]
        history = generate(900, locations=3, prefix=f"h{tag}")
        arriving = generate(300, locations=2, seed=11, prefix=f"l{tag}")
        async with RawLog(kafka) as raw_log:
            await raw_log.append_many(
                [Incoming(dumps(b), b, webhook_id=b["webhookId"]) for b in history],
                source="import",
                signature="trusted",
            )

        env = webhook_env(kafka, ably_server)
        cli_env = {**os.environ, **env, "STREAMS_DATA_DIR": str(tmp_path / "cli")}

        # A version no worker has computed yet is refused (none runs: the worker starts below).
        started = cli(cli_env, "replay", "start", "--projection", "revenue", "--version", "3")
        assert started.returncode == 0, started.stderr
        refused = cli(cli_env, "replay", "promote", "--projection", "revenue", "--version", "3")
        assert refused.returncode == 1
        assert "has not caught up: it is 900 records behind" in refused.stderr, refused.stderr

        worker = start_worker(env, tmp_path / "worker", program=PROGRAM)
        worker.wait_healthy()
        await consumed_by(kafka, ["streams"])

        # Version 2 of every projection, computed while live webhooks keep arriving.
        raw_before, derived_before = await head(kafka), await derived_head(kafka)
        deduplicated_before = http("GET", f"http://{ably_server.address}/_standin/stats")[1][
            "deduplicated"
        ]
        replay = subprocess.Popen(
            [*PROGRAM, "replay", "start", "--projection", "all", "--version", "2", "--wait"],
            env=cli_env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for body in arriving:
            status, answer = post_webhook(worker, body)
            assert status == 200, answer
        out, err = replay.communicate(timeout=600)
        assert replay.returncode == 0, err
        assert "has caught up with the log" in out, out
        assert "replay [" in err and "/s" in err  # the progress bar: done/total, rate, time left

        # One run folds every projection's version 2 in one read of the log.
        await consumed_by(kafka, ["streams", ALL_V2])
        for projection in LIVE_PROJECTIONS:
            # Each group's commits are its own transactions: wait for both to settle.
            def settled(p: str = projection) -> subprocess.CompletedProcess[str] | None:
                done = cli(cli_env, "replay", "compare", "--projection", p, "--version", "2")
                return done if done.returncode == 0 else None

            compared = wait_for(settled, timeout=120, interval=2)
            again = cli(cli_env, "replay", "compare", "--projection", projection, "--version", "2")
            assert compared, again.stdout
            assert "are equal" in compared.stdout

        for projection in LIVE_PROJECTIONS:
            promoted = cli(
                cli_env, "replay", "promote", "--projection", projection, "--version", "2"
            )
            assert promoted.returncode == 0, promoted.stderr

        status = cli(cli_env, "replay", "status")
        assert status.returncode == 0, status.stderr
        rows = {tuple(line.split()[:3]) for line in status.stdout.splitlines()[1:]}
        for projection in LIVE_PROJECTIONS:
            assert (projection, "1", "no") in rows and (projection, "2", "yes") in rows, rows

        # Queries answer from version 2, with the reference's values.
        for location, want in {**expected(history), **expected(arriving)}.items():
            revenue = {k: format_minor(m, k[1]) for k, m in want["revenue"].items()}

            def answers(location: str = location) -> dict[str, tuple[str | None, Any]] | None:
                try:
                    return {k: versioned_query(worker, location, k) for k in LIVE_PROJECTIONS}
                except OSError:  # 503 until this worker's replay worker is known to serve
                    return None

            answered = wait_for(answers, timeout=60)
            assert answered, f"no answers for {location}"
            assert {version for version, _ in answered.values()} == {"2"}
            days = answered["revenue"][1]["days"]
            assert {(d["date"], d["currency"]): d["amount"] for d in days} == revenue
            assert answered["unread"][1]["conversations"] == want["unread"]
            leads = answered["leads"][1]["days"]
            assert {d["date"]: d["count"] for d in leads} == want["leads"]

        # A projection the live worker never had, computed over all history.
        new = cli(
            cli_env, "replay", "start", "--projection", "revenue_by_rep", "--version", "1", "--wait"
        )
        assert new.returncode == 0, new.stderr
        await consumed_by(kafka, [unit_id("revenue_by_rep", 1)])
        tables = await read_changelog(kafka, unit_id("revenue_by_rep", 1))
        by_rep = tables.get(REP_REVENUE, {})
        assert by_rep == {**expected_by_rep(history), **expected_by_rep(arriving)}

        # A version dropped from a run the others still use leaves the run to them.
        partly = cli(cli_env, "replay", "drop", "--projection", "pipeline", "--version", "2")
        assert partly.returncode == 0, partly.stderr
        assert f"its run {ALL_V2} goes on for" in partly.stdout, partly.stdout
        status = cli(cli_env, "replay", "status").stdout
        assert not [line for line in status.splitlines() if line.split()[:2] == ["pipeline", "2"]]

        # A retired version is dropped: its group, topics and local state are gone.
        dropped = cli(cli_env, "replay", "drop", "--projection", "revenue", "--version", "3")
        assert dropped.returncode == 0, dropped.stderr
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            topics = await admin.list_topics()
            assert not [t for t in topics if t.startswith(f"{unit_id('revenue', 3)}-")]
            assert [t for t in topics if t.startswith(f"{ALL_V2}-")]
            groups = {g[0] for g in await admin.list_consumer_groups()}
            assert unit_id("revenue", 3) not in groups and ALL_V2 in groups
        finally:
            await admin.close()
        replay_dirs = tmp_path / "worker" / "replay"
        assert wait_for(lambda: not (replay_dirs / unit_id("revenue", 3)).exists(), timeout=30)
        assert (replay_dirs / ALL_V2).exists()

        # `all` acts on every projection that has the version, with the same flags.
        every = cli(cli_env, "replay", "compare", "--projection", "all", "--version", "2")
        assert every.returncode == 0, every.stdout + every.stderr
        assert every.stdout.count("are equal") == len(PROJECTIONS), every.stdout
        refused = cli(cli_env, "replay", "drop", "--projection", "all", "--version", "2")
        assert refused.returncode == 1 and "serves queries" in refused.stderr, refused.stderr
        rows = [line.split()[:2] for line in cli(cli_env, "replay", "status").stdout.splitlines()]
        assert ["appointments", "2"] in rows  # a refusal drops nothing, not even what it could

        # Silence: every derived event written since the replay began comes from a webhook that
        # arrived since (none re-derived from history), and Ably de-duplicated nothing.
        since = await derived_since(kafka, derived_before)
        assert since, "the live webhooks derived nothing"
        stale = [e for e in since if e["source"]["offset"] < raw_before[e["source"]["partition"]]]
        assert stale == []
        stats = http("GET", f"http://{ably_server.address}/_standin/stats")[1]
        assert stats["deduplicated"] == deduplicated_before
    finally:
        if worker is not None:
            worker.stop()
        service.stop()
