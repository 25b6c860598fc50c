"""What every benchmark row shares: a fresh embedded broker, the pre-filled raw topic, the
machine's description and the statistics (median of the trials, with min and max)."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from streams.broker import LocalKafka
from streams.codec import dumps, loads
from streams.ingress.raw_log import Incoming, RawLog
from streams.settings import Settings
from streams.tables.reminders import REMINDERS
from streams.topics import RAW_WEBHOOKS, ensure_topics
from tests.traffic import generate

__all__ = [
    "PARTITIONS",
    "Spread",
    "bodies",
    "broker",
    "commits",
    "fill",
    "machine",
    "normalise",
    "worker_env",
]

PARTITIONS = 4
LOCATIONS = 200


def bodies(records: int, seed: int = 11) -> list[dict[str, Any]]:
    """The production-like mix (tests/traffic.py, with opportunities and appointments)."""
    return generate(records, locations=LOCATIONS, seed=seed, prefix="loc", pipeline=True)


@contextmanager
def broker() -> Iterator[LocalKafka]:
    """A fresh single-node embedded broker with the project's topics, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="streams-bench-") as tmp:
        kafka = LocalKafka(Path(tmp) / "kafka", libs=Settings.from_env({}).kafka_libs)
        kafka.start()
        try:
            asyncio.run(_ready(kafka))
            yield kafka
        finally:
            kafka.stop()


async def _ready(kafka: LocalKafka) -> None:
    await kafka.wait_ready()
    await ensure_topics(kafka.bootstrap, partitions=PARTITIONS, replication_factor=1)


async def fill(bootstrap: str, items: list[dict[str, Any]]) -> None:
    """Write the bodies to the raw topic as `source=import` records (no notifications)."""
    async with RawLog(bootstrap) as raw_log:
        for start in range(0, len(items), 5000):
            chunk = [Incoming(dumps(b), b) for b in items[start : start + 5000]]
            await raw_log.append_many(chunk, source="import", signature="trusted")


async def commits(
    bootstrap: str, group: str, records: int, alive: Callable[[], bool], timeout: float = 900
) -> tuple[float, int, float]:
    """Poll what `group` has committed of the raw topic (all partitions together) every 20 ms
    until it reaches `records`: (when the first poll answered, what it saw committed, when a
    poll saw all), times as `time.perf_counter()`. `alive()` is asked between polls."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout
    first: tuple[float, int] | None = None
    try:
        while True:
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except KafkaError as exc:  # e.g. no group coordinator yet on a fresh broker
                if not exc.retriable:
                    raise
                offsets = {}
            done = sum(m.offset for tp, m in offsets.items() if tp.topic == RAW_WEBHOOKS.name)
            now = time.perf_counter()
            if first is None:
                first = now, done
            if done >= records:
                assert first is not None
                return first[0], first[1], now
            assert alive(), f"the consumer of {group} stopped at {done:,} records"
            assert time.monotonic() < deadline, f"{group}: {done:,} of {records:,} in {timeout}s"
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


# Tables left out of comparisons: the live worker's reminders tick rewrites this one by the
# wall clock, which nothing else runs.
UNCOMPARED = frozenset({REMINDERS})


def normalise(tables: dict[str, dict[Any, Any]]) -> dict[str, dict[str, Any]]:
    """Tables as JSON would hold them (keys JSON-encoded, None rows absent, empty tables left
    out), for comparing key for key."""
    return {
        name: {dumps(k).decode(): loads(dumps(v)) for k, v in rows.items() if v is not None}
        for name, rows in sorted(tables.items())
        if name not in UNCOMPARED and any(v is not None for v in rows.values())
    }


def worker_env(bootstrap: str, **extra: str) -> dict[str, str]:
    return {
        "STREAMS_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMS_PARTITIONS": str(PARTITIONS),
        "STREAMS_REPLICATION_FACTOR": "1",
        "ABLY_API_KEY": "",
        **extra,
    }


@dataclass
class Spread:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cell(self, fmt: str = ",.0f") -> str:
        if len(self.values) == 1:
            return format(self.median, fmt)
        return (
            f"{format(self.median, fmt)} ({format(min(self.values), fmt)} to "
            f"{format(max(self.values), fmt)})"
        )


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("aiokafka", "rocksdict", "quixstreams", "orjson")
    )
    return (
        f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Apache Kafka {_kafka_version()} (embedded, one node); "
        f"{versions}"
    )


def _kafka_version() -> str:
    jars = sorted(Settings.from_env({}).kafka_libs.glob("kafka_2.13-*.jar"))
    return jars[0].stem.split("-", 1)[1] if jars else "?"
