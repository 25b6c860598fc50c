"""A minimal Faust agent with a table on the real broker: the table survives a worker restart,
rebuilt from its changelog topic when the worker's local RocksDB state is gone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

APP = Path(__file__).with_name("counter_app.py")
REPO = Path(__file__).resolve().parents[2]


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
        stop_worker(worker)
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
        stop_worker(worker)


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log


def start_worker(bootstrap: str, topic: str, datadir: Path) -> Worker:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    datadir.mkdir(parents=True)
    log = datadir / "worker.log"
    process = subprocess.Popen(
        [sys.executable, str(APP), bootstrap, topic, str(datadir), str(port)],
        cwd=REPO,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Worker(process, port, log)


def wait_for_counts(worker: Worker, expected: dict[str, int], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    counts: dict = {}
    while time.monotonic() < deadline:
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/counts", timeout=2) as r:
                counts = json.loads(r.read())
            if counts == expected:
                return counts
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    return counts


def stop_worker(worker: Worker) -> None:
    worker.process.terminate()
    try:
        worker.process.wait(30)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()


async def produce(bootstrap: str, topic: str, per_key: dict[str, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, n in per_key.items():
            for _ in range(n):
                await producer.send_and_wait(topic, b"x", key=key.encode())
    finally:
        await producer.stop()
