"""Real worker processes for integration tests: start, wait until healthy, stop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, decoded JSON or text); (0, reason) when nothing answers."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, repr(exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def counter(exposition: str, name: str) -> int:
    """A counter without labels, from a Prometheus text exposition (0 before its first count)."""
    for line in exposition.splitlines():
        if line.startswith(f"{name} "):
            return int(float(line.split()[1]))
    return 0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.tail()
            if http("GET", f"{self.url}/healthz")[0] == 200:
                return
            time.sleep(0.2)  # a cheap GET: a started worker is seen at once
        raise AssertionError(f"worker not healthy within {timeout}s\n{self.tail()}")

    def counter(self, name: str) -> int:
        """A counter without labels, from the worker's /metrics."""
        status, exposition = http("GET", f"{self.url}/metrics")
        assert status == 200, exposition
        return counter(str(exposition), name)

    def stop(self, timeout: float = 30) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit (kill -9)."""
        self.process.kill()
        self.process.wait()

    def rss_mib(self) -> float:
        """The worker process's resident memory."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) / 1024

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def start_worker(
    env: dict[str, str],
    data_dir: Path,
    command: str = "worker",
    program: list[str] | None = None,
    port: int | None = None,
) -> Worker:
    """A worker process (`program`, default the `streams` command) with its own data
    directory and a free web port (or `port`, to restart one where its clients know it)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "worker.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    full_env |= env | {"STREAMS_DATA_DIR": str(data_dir), "STREAMS_WEB_PORT": str(port)}
    process = subprocess.Popen(
        [*(program or [str(REPO / ".venv/bin/streams")]), command],
        env=full_env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    return Worker(process, port, log)


def wait_for(check: Any, timeout: float = 60, interval: float = 0.5) -> Any:
    """Call `check()` until it returns something truthy; return that (or the last value)."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value
