"""A minimal Faust agent with a table on the real broker: the table survives a worker restart,
rebuilt from its changelog topic when the worker's local RocksDB state is gone."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.processes import REPO, Worker, free_port, http, wait_for

APP = Path(__file__).with_name("counter_app.py")


async def test_table_is_recovered_from_changelog_after_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = f"counter-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    await admin.close()

    await produce(kafka_bootstrap, topic, {"a": 5, "b": 3, "c": 1})
    worker = start_worker(kafka_bootstrap, topic, tmp_path / "first")
    try:
        counts = wait_for_counts(worker, {"a": 5, "b": 3, "c": 1})
    finally:
        worker.stop()
    assert counts == {"a": 5, "b": 3, "c": 1}

    # A fresh data directory: nothing local, so the counts can only come from the changelog.
    worker = start_worker(kafka_bootstrap, topic, tmp_path / "second")
    try:
        assert wait_for_counts(worker, {"a": 5, "b": 3, "c": 1}) == {"a": 5, "b": 3, "c": 1}
        # Offsets were committed: the restarted worker goes on, it does not count old records again.
        await produce(kafka_bootstrap, topic, {"a": 1, "d": 2})
        assert wait_for_counts(worker, {"a": 6, "b": 3, "c": 1, "d": 2}) == {
            "a": 6,
            "b": 3,
            "c": 1,
            "d": 2,
        }
    finally:
        worker.stop()


def start_worker(bootstrap: str, topic: str, datadir: Path) -> Worker:
    port = free_port()
    datadir.mkdir(parents=True)
    log = datadir / "worker.log"
    process = subprocess.Popen(
        [sys.executable, str(APP), bootstrap, topic, str(datadir), str(port)],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Worker(process, port, log)


def wait_for_counts(worker: Worker, expected: dict[str, int], timeout: float = 90) -> Any:
    """The worker's counts once they equal `expected` (or the last ones seen)."""

    def counts() -> tuple[int, Any]:
        assert worker.process.poll() is None, worker.tail()
        return http("GET", f"{worker.url}/counts")

    wait_for(lambda: counts() == (200, expected), timeout=timeout)
    return counts()[1]


async def produce(bootstrap: str, topic: str, per_key: dict[str, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, n in per_key.items():
            for _ in range(n):
                await producer.send_and_wait(topic, b"x", key=key.encode())
    finally:
        await producer.stop()
