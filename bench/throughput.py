"""Projection throughput against the ceiling, measured in one run on the embedded broker.

    make bench    (or .venv/bin/python -m bench.throughput [--records 50000] [--trials 3])

1. Ceiling: a bare aiokafka consumer that reads and JSON-decodes every raw record, nothing else.
2. This project: a `streams worker` (all family agents, RocksDB tables) consuming the same
   pre-filled raw topic from offset 0 until its group has committed past the end; the worker's
   start-up (until /healthz answers) is timed apart and left out of the rate.

Writes a markdown table to bench/results/throughput.md (median of the trials, with min and max).
Traffic comes from tests/traffic.py (messages dominate, then contacts, invoices with partial
payments, unread resets, duplicates), imported as `source=import` so no notifications are sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.app import APP_ID
from streams.broker import LocalKafka
from streams.codec import dumps
from streams.ingress.raw_log import Incoming, RawLog
from streams.settings import REPO_ROOT, Settings
from streams.topics import RAW_WEBHOOKS, ensure_topics
from tests.integration.processes import start_worker
from tests.traffic import generate

PARTITIONS = 4
RESULTS = REPO_ROOT / "bench" / "results" / "throughput.md"


async def fill(bootstrap: str, records: int) -> None:
    bodies = generate(records, locations=50, seed=11)
    async with RawLog(bootstrap) as raw_log:
        for start in range(0, len(bodies), 5000):
            chunk = [Incoming(dumps(b), b) for b in bodies[start : start + 5000]]
            await raw_log.append_many(chunk, source="import", signature="trusted")


async def ceiling(bootstrap: str, records: int) -> float:
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


async def prepare_and_measure_ceiling(broker: LocalKafka, records: int) -> float:
    await broker.wait_ready()
    await ensure_topics(broker.bootstrap, partitions=PARTITIONS, replication_factor=1)
    await fill(broker.bootstrap, records)
    return await ceiling(broker.bootstrap, records)


async def committed_total(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(
        meta.offset
        for tp, meta in offsets.items()
        if tp.topic == RAW_WEBHOOKS.name and meta.offset > 0
    )


def worker_rate(bootstrap: str, records: int, workdir: Path) -> tuple[float, float]:
    """(records/s while consuming, start-up seconds) of one fresh worker over the whole log.
    The worker's group id is fixed, so every trial gets a fresh broker (see run())."""
    started = time.perf_counter()
    worker = start_worker(
        {
            "STREAMS_KAFKA_BOOTSTRAP": bootstrap,
            "STREAMS_PARTITIONS": str(PARTITIONS),
            "STREAMS_REPLICATION_FACTOR": "1",
            "ABLY_API_KEY": "",  # log, do not publish (and there is nothing to publish)
        },
        workdir,
    )
    try:
        worker.wait_healthy()
        ready = time.perf_counter()
        while asyncio.run(committed_total(bootstrap, APP_ID)) < records:
            time.sleep(0.2)
        return records / (time.perf_counter() - ready), ready - started
    finally:
        worker.stop()


def run(records: int, trials: int) -> str:
    ceilings, ours, startups = [], [], []
    libs = Settings.from_env({}).kafka_libs
    for trial in range(trials):
        with tempfile.TemporaryDirectory(prefix="streams-bench-") as tmp:
            broker = LocalKafka(Path(tmp) / "kafka", libs=libs)
            broker.start()
            try:
                ceilings.append(asyncio.run(prepare_and_measure_ceiling(broker, records)))
                rate, startup = worker_rate(broker.bootstrap, records, Path(tmp) / "worker")
                ours.append(rate)
                startups.append(startup)
            finally:
                broker.stop()
        print(f"trial {trial + 1}: ceiling {ceilings[-1]:,.0f}/s, ours {ours[-1]:,.0f}/s")
    return report(records, trials, ceilings, ours, startups)


def report(
    records: int, trials: int, ceilings: list[float], ours: list[float], startups: list[float]
) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f} to {max(values):,.0f})"

    ratio = statistics.median(ours) / statistics.median(ceilings)
    return "\n".join(
        [
            "# Projection throughput",
            "",
            f"{records:,} raw records on {PARTITIONS} partitions, embedded Kafka broker, "
            f"median of {trials} trials (min to max). {os.cpu_count()} cores, "
            f"{_memory_gib():.0f} GiB, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}.",
            "",
            "| row | records/s | vs ceiling |",
            "|---|---|---|",
            f"| ceiling: bare aiokafka consumer + orjson decode | {cell(ceilings)} | 1.00 |",
            f"| streams worker: revenue, unread, leads, contacts, messages (RocksDB) | {cell(ours)} "
            f"| {ratio:.2f} |",
            "",
            f"Worker start-up until /healthz (not in the rate): {statistics.median(startups):.1f} s.",
            "",
        ]
    )


def _memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    table = run(args.records, args.trials)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
