"""Row 7, memory: peak RSS of a worker holding 1,000,000 table keys, beside an idle worker.

Folding a million records through the worker would take longer than the whole bench, so the
keys are put where a worker takes them from after a crash: the `seen_messages` table's
changelog topic, written directly (keys JSON-encoded as Faust does). A fresh worker recovers
them into RocksDB before /healthz answers; then its VmHWM (peak RSS) is read from /proc.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bench.common import PARTITIONS, worker_env
from streams.app import APP_ID
from streams.tables.unread import SEEN_MESSAGES
from tests.integration.processes import start_worker

__all__ = ["peak_rss"]


async def _fill_changelog(bootstrap: str, keys: int) -> None:
    topic = f"{APP_ID}-{SEEN_MESSAGES}-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # The idle worker before has usually created it already, as Faust does.
        await admin.create_topics(
            [NewTopic(topic, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for n in range(keys):
            key = f'"mem-conv{n % 5000}/mem-m{n}"'.encode()
            pending.append(await producer.send(topic, b"true", key=key, partition=n % PARTITIONS))
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _rss(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return tuple(int(fields[name].split()[0]) / 1024 for name in ("VmHWM", "VmRSS"))  # type: ignore[return-value]


def peak_rss(bootstrap: str, workdir: Path, keys: int) -> tuple[float, float, float]:
    """(peak RSS MiB holding `keys` keys, seconds to recover them); idle worker's peak RSS
    is measured first on the same broker, before the keys exist."""
    idle = start_worker(worker_env(bootstrap), workdir / "idle")
    try:
        idle.wait_healthy()
        time.sleep(2)
        idle_peak, _ = _rss(idle.process.pid)
    finally:
        idle.stop()
    asyncio.run(_fill_changelog(bootstrap, keys))
    # An empty data directory: the worker recovers every key from the changelog.
    started = time.perf_counter()
    full = start_worker(worker_env(bootstrap), workdir / "full")
    try:
        full.wait_healthy(timeout=900)
        recovered = time.perf_counter() - started
        peak, _ = _rss(full.process.pid)
    finally:
        full.stop()
    return peak, idle_peak, recovered
