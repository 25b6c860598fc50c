"""Replay speed: a new version of every projection computed from offset 0 of a pre-filled log.

    .venv/bin/python -m bench.replay [--records 1000000]

On the embedded broker, fills the raw topic with realistic traffic (tests/traffic.py) and runs,
for each projection, the replay worker a live worker would start (`streams replay-worker NAME 2`)
until its group has committed the head of the log: first one at a time (each alone on the
machine), then all at once (what `streams replay start --projection all` starts). Reports records
of the log per second, and the catch-up rate each replay worker logs. Writes
bench/results/replay.md. `make bench` runs only the all-at-once case, for row 6 (`all_at_once`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.common import bodies
from streams.broker import LocalKafka
from streams.codec import dumps
from streams.processes import free_port
from streams.replay.control import Position
from streams.replay.versions import unit_id
from streams.settings import REPO_ROOT, Settings
from streams.tables.registry import PROJECTIONS
from streams.topics import RAW_WEBHOOKS, ensure_topics, raw_key

PARTITIONS = 4
RESULTS = REPO_ROOT / "bench" / "results" / "replay.md"
CAUGHT_UP = re.compile(r"caught up with ([\d,]+) records in ([\d.]+)s \(([\d,]+)/s")


async def fill(bootstrap: str, records: int) -> float:
    """Write `records` webhooks of the production-like mix as the ingress would (headers
    included); seconds taken."""
    started = time.perf_counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=50, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        pending = []
        for n, body in enumerate(bodies(records)):
            headers = [
                ("webhook-id", f"bench-{n}".encode()),
                ("event-type", str(body.get("type") or "InvoicePartiallyPaid").encode()),
                ("received-at", b"1767225600000"),
                ("source", b"import"),
                ("signature", b"trusted"),
            ]
            pending.append(
                await producer.send(
                    RAW_WEBHOOKS.name, dumps(body), key=raw_key(body), headers=headers
                )
            )
            if len(pending) == 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def caught_up(bootstrap: str, groups: list[str]) -> bool:
    async with Position(bootstrap) as position:
        head = await position.head()
        for group in groups:
            lag = await position.lag(group, head)
            if lag.behind or not lag.total:
                return False
    return True


def replay(bootstrap: str, names: list[str], version: int, workdir: Path) -> tuple[float, dict]:
    """Wall seconds until every named projection's version has committed the head, and what
    each replay worker logged about its catch-up."""
    env = {
        **os.environ,
        "STREAMS_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMS_DATA_DIR": str(workdir),
        "STREAMS_PARTITIONS": str(PARTITIONS),
        "STREAMS_REPLICATION_FACTOR": "1",
    }
    workdir.mkdir(parents=True, exist_ok=True)
    logs = {name: workdir / f"{name}.log" for name in names}
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                str(REPO_ROOT / ".venv/bin/streams"),
                "replay-worker",
                name,
                str(version),
                "--web-port",
                str(free_port()),
            ],
            env=env,
            stdout=logs[name].open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name in names
    ]
    try:
        groups = [unit_id(name, version) for name in names]
        while not asyncio.run(caught_up(bootstrap, groups)):
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a replay worker exited: see {workdir}")
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.wait(60)
    logged = {}
    for name, path in logs.items():
        found = CAUGHT_UP.search(path.read_text(errors="replace"))
        if found:
            logged[name] = (float(found.group(2)), found.group(3))
    return seconds, logged


def all_at_once(bootstrap: str, records: int, version: int, workdir: Path) -> float:
    """Row 6: log records/s of a new version of every projection at once, from offset 0 of a
    log holding `records`, start-up included."""
    seconds, _ = replay(bootstrap, [p.name for p in PROJECTIONS], version, workdir)
    return records / seconds


def run(records: int) -> str:
    names = [p.name for p in PROJECTIONS]
    rows = []
    with tempfile.TemporaryDirectory(prefix="streams-bench-replay-") as tmp:
        broker = LocalKafka(Path(tmp) / "kafka", libs=Settings.from_env({}).kafka_libs)
        broker.start()
        try:
            asyncio.run(broker.wait_ready())
            asyncio.run(
                ensure_topics(broker.bootstrap, partitions=PARTITIONS, replication_factor=1)
            )
            filled = asyncio.run(fill(broker.bootstrap, records))
            print(f"filled {records:,} records in {filled:.0f}s")
            for version, group in enumerate([[n] for n in names] + [names], start=2):
                seconds, logged = replay(
                    broker.bootstrap, group, version, Path(tmp) / f"v{version}"
                )
                catchup = ", ".join(f"{n}: {s:.0f}s at {r}/s" for n, (s, r) in logged.items())
                rows.append(
                    f"| {' + '.join(group)} | {records / seconds:,.0f} | {seconds:.0f} | {catchup} |"
                )
                print(rows[-1])
        finally:
            broker.stop()
    load = os.getloadavg()[0]
    return "\n".join(
        [
            "# Replay speed",
            "",
            f"{records:,} raw records on {PARTITIONS} partitions, embedded Kafka broker, one "
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}. Load average "
            f"at the end: {load:.1f} (other work shared the machine).",
            "",
            "Each row starts the replay worker(s) from empty state and stops when every one has "
            "committed the head of the log. Wall time includes process start, the bulk catch-up "
            "(plain consumer, in-memory folds, final state to the changelogs) and Faust's start-up "
            "and table recovery from those changelogs.",
            "",
            "| replayed | log records/s | wall s | catch-up as logged |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    table = run(args.records)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
