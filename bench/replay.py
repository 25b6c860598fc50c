"""Row 6, replay: a new version of every projection computed from offset 0 of a pre-filled log,
driven as an operator drives it, `streams replay start --projection all --version N --wait`.

    .venv/bin/python -m bench.replay [--records 1000000]

On the embedded broker, fills the raw topic with realistic traffic (tests/traffic.py), starts a
live worker and lets it catch up with the log (replay workers are started by the live workers:
`streams.replay.supervisor`), then times the command from its start until it returns, which is
when every version has committed the head of the log. A replay version is the runtime's loop
(`streams.runtime`) with its own consumer group, changelog and data directory, one
`streams replay-worker` process per projection, so the time includes recording the version,
the live worker noticing it, starting the replay workers, their group joins and the folding.
Afterwards `streams replay compare --projection NAME --version N` must find every version equal to the live one,
key for key.

`make bench` runs only the all-at-once case, for row 6 (`all_at_once`); `python -m bench.replay`
also replays each projection alone (dropping each version after it), and writes
bench/results/replay.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import PARTITIONS, bodies, broker, commits, fill, worker_env
from streams.app import APP_ID
from streams.settings import REPO_ROOT
from streams.tables.registry import PROJECTIONS
from tests.integration.processes import Worker, start_worker

__all__ = ["all_at_once"]

RESULTS = REPO_ROOT / "bench" / "results" / "replay.md"
TIMEOUT = 3600.0  # seconds a replay may take before the bench gives up


def _streams(bootstrap: str, workdir: Path, *args: str) -> str:
    """Run a `streams` command as an operator would; its output. Raises when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    env |= worker_env(bootstrap) | {"STREAMS_DATA_DIR": str(workdir)}
    done = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/streams"), *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if done.returncode:
        raise RuntimeError(f"streams {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def live_worker(bootstrap: str, records: int, workdir: Path) -> Worker:
    """A live worker that has folded the whole log (so that it is idle during the replay)."""
    worker = start_worker(worker_env(bootstrap), workdir)
    try:
        worker.wait_healthy()
        running = worker.process
        asyncio.run(commits(bootstrap, APP_ID, records, lambda: running.poll() is None))
    except BaseException:
        worker.stop()
        raise
    return worker


def replay(bootstrap: str, projection: str, version: int, workdir: Path) -> float:
    """Wall seconds of `streams replay start --projection PROJECTION --version VERSION --wait`,
    then checked against the live version with `streams replay compare`."""
    started = time.perf_counter()
    command = ["replay", "start", "--projection", projection, "--version", str(version), "--wait"]
    _streams(bootstrap, workdir, *command)
    seconds = time.perf_counter() - started
    for p in PROJECTIONS:
        if p.live and projection in (p.name, "all"):
            _streams(
                bootstrap,
                workdir,
                *("replay", "compare", "--projection", p.name, "--version", str(version)),
            )
    return seconds


def all_at_once(bootstrap: str, records: int, version: int, workdir: Path) -> float:
    """Row 6: log records/s of a new version of every projection at once, from offset 0 of a
    log holding `records`, start-up included."""
    worker = live_worker(bootstrap, records, workdir)
    try:
        return records / replay(bootstrap, "all", version, workdir)
    finally:
        worker.stop(timeout=60)


def run(records: int) -> str:
    rows = []
    with broker() as kafka, tempfile.TemporaryDirectory(prefix="streams-bench-replay-") as tmp:
        started = time.perf_counter()
        asyncio.run(fill(kafka.bootstrap, bodies(records)))
        print(f"filled {records:,} records in {time.perf_counter() - started:.0f}s", flush=True)
        worker = live_worker(kafka.bootstrap, records, Path(tmp))
        try:
            names = [p.name for p in PROJECTIONS]
            for version, name in enumerate([*names, "all"], start=2):
                seconds = replay(kafka.bootstrap, name, version, Path(tmp))
                rows.append(f"| {name} | {records / seconds:,.0f} | {seconds:.0f} |")
                print(rows[-1], flush=True)
                if name != "all":  # its replay worker would otherwise keep following the log
                    _streams(
                        kafka.bootstrap,
                        Path(tmp),
                        *("replay", "drop", "--projection", name, "--version", str(version)),
                    )
        finally:
            worker.stop(timeout=60)
    load = os.getloadavg()[0]
    return "\n".join(
        [
            "# Replay speed",
            "",
            f"{records:,} raw records on {PARTITIONS} partitions, embedded Kafka broker, one "
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}. Load average "
            f"at the end: {load:.1f} (other work shared the machine).",
            "",
            "Each row is `streams replay start --projection NAME --version N --wait`, timed from "
            "its start until it returns (every version has committed the head of the log), "
            "beside one live worker that has folded the log already and starts the replay "
            "workers (one process per projection, the runtime's loop with its own group). Each "
            "version was then found equal to the live one, key for key "
            "(`streams replay compare --projection NAME --version N`).",
            "",
            "| replayed | log records/s | wall s |",
            "|---|---|---|",
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
