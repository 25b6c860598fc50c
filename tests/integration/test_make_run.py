"""`make run` from the repository: the embedded stack answers /healthz, and SIGTERM on make
stops everything it started, broker included."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_make_run_reaches_healthz_and_sigterm_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    env |= {"STREAMS_DATA_DIR": str(tmp_path / "data"), "STREAMS_WEB_PORT": str(port)}
    log = tmp_path / "make-run.log"
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        status = wait_for_health(port, make, timeout=120)
        assert status == {"status": "ok"}, log.read_text()[-3000:]
        started = descendants(make.pid)
        assert any("kafka.Kafka" in command for command in started.values()), started
        assert (tmp_path / "data" / "kafka" / "kafka.json").exists()

        make.send_signal(signal.SIGTERM)
        assert make.wait(60) is not None
        deadline = time.monotonic() + 30
        while (alive := [pid for pid in started if pid_alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert alive == [], {pid: started[pid] for pid in alive}
    finally:
        if make.poll() is None:
            make.kill()
        for pid in descendants(make.pid):
            os.kill(pid, signal.SIGKILL)


def wait_for_health(port: int, process: subprocess.Popen[bytes], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "make run exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"/healthz did not answer 200 within {timeout}s")


def descendants(root: int) -> dict[int, str]:
    """Every live process below `root`, with its command line, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            try:
                found[child] = (
                    (Path("/proc") / str(child) / "cmdline")
                    .read_bytes()
                    .replace(b"\0", b" ")
                    .decode()
                )
            except FileNotFoundError:
                continue
            stack.append(child)
    return found


def pid_alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
