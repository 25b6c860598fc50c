"""A fresh stack from `make run` (its own data directory and port): it answers /healthz, takes a
few thousand lines of realistic traffic through `streams ingest --wait`, answers exactly what the
projection semantics define for every location, and SIGTERM on make stops everything it started,
broker included."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt

from tests.traffic import expected, format_minor, generate, to_jsonl

REPO = Path(__file__).resolve().parents[2]


def run_cli(
    env: dict[str, str], *args: str, status: int = 0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(REPO / ".venv/bin/streams"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        input=stdin,
    )
    assert result.returncode == status, result.stdout + result.stderr
    return result


def test_fresh_stack_ingests_exactly_and_stops_cleanly(tmp_path: Path) -> None:
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

        bodies = generate(3000, locations=6)
        traffic = tmp_path / "traffic.jsonl"
        traffic.write_text(to_jsonl(bodies[:2000], broken=3))
        # Skipped lines are reported, the others written, and the status says something was off.
        ingest = run_cli(env, "ingest", str(traffic), "--wait", status=1)
        assert "2000 records written" in ingest.stdout, ingest.stdout + ingest.stderr
        assert "3 lines skipped" in ingest.stdout
        assert "every projection has consumed them" in ingest.stdout
        piped = run_cli(env, "ingest", "-", "--wait", stdin=to_jsonl(bodies[2000:], broken=0))
        assert "1000 records written to ghl.webhooks.v1, 0 lines skipped" in piped.stdout

        for location, want in sorted(expected(bodies).items()):
            revenue = json.loads(
                run_cli(env, "query", "revenue", "--location", location, "--json").stdout
            )
            assert {(d["date"], d["currency"]): d["amount"] for d in revenue["days"]} == {
                key: format_minor(minor, key[1]) for key, minor in want["revenue"].items()
            }, location
            unread = json.loads(
                run_cli(env, "query", "unread", "--location", location, "--json").stdout
            )
            assert unread["conversations"] == want["unread"], location
            assert unread["total"] == sum(want["unread"].values())
            leads = json.loads(
                run_cli(env, "query", "leads", "--location", location, "--json").stdout
            )
            assert {d["date"]: d["count"] for d in leads["days"]} == want["leads"], location
        table = run_cli(env, "query", "revenue", "--location", "loc1").stdout
        assert table.startswith("Revenue for loc1") and "total" in table

        make.send_signal(signal.SIGTERM)
        make.wait(60)  # raises TimeoutExpired if make has not ended within a minute
        deadline = time.monotonic() + 30
        while (alive := [pid for pid in started if pid_alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert alive == [], {pid: started[pid] for pid in alive}
    finally:
        if make.poll() is None:
            make.kill()
        for pid in descendants(make.pid):
            os.kill(pid, signal.SIGKILL)


def test_readme_quickstart_signs_sends_and_queries_the_samples(tmp_path: Path) -> None:
    """The README's first screen, as a new user runs it: a dev key, `make run` with it, the
    sample webhooks signed and sent, and their figures in queries. The CLI finds the stack from
    STREAMS_DATA_DIR alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMS_", "GHL_"))}
    env["STREAMS_DATA_DIR"] = str(tmp_path / "data")
    made = run_cli(env, "dev-key").stdout
    [export] = [line for line in made.splitlines() if "export GHL_WEBHOOK_ED25519" in line]
    name, _, value = export.strip().removeprefix("export ").partition("=")
    env[name] = value
    log = tmp_path / "make-run.log"
    with make_run(env, log) as port:
        started = log.read_text()
        assert f"streams: worker on http://127.0.0.1:{port}" in started, started
        assert "ERROR" not in started and "Traceback" not in started, started

        sent = run_cli(env, "send", str(REPO / "docs" / "samples" / "webhooks.jsonl")).stdout
        answers = sent.splitlines()
        assert len(answers) == 19 and all(line.startswith("200 ") for line in answers), sent

        def answer(kind: str) -> dict:
            return dict(
                json.loads(
                    run_cli(env, "query", kind, "--location", "demo-location", "--json").stdout
                )
            )

        deadline = time.monotonic() + 60
        while answer("registry").get("installed") is not True and time.monotonic() < deadline:
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while answer("revenue")["totals"] != {"USD": "1250.50"} and time.monotonic() < deadline:
            time.sleep(0.5)
        assert answer("revenue")["totals"] == {"USD": "1250.50"}
        unread = answer("unread")
        assert unread["conversations"] == {"demo-conv-1": 2} and unread["total"] == 2
        assert {d["date"]: d["count"] for d in answer("leads")["days"]} == {"2026-12-01": 2}
        assert answer("pipeline")["won_total"] == "8000.00"
        assert answer("appointments")["total"] == 1 and answer("tasks")["total"] == 1
        assert answer("email_stats")["totals"] == {"delivered": 1}
        table = run_cli(env, "query", "appointments", "--location", "demo-location").stdout
        assert "Roof inspection with Ann" in table and "{" not in table

        # Listings have a header row and aligned columns.
        topics = run_cli(env, "topics").stdout.splitlines()
        assert topics[0].split() == ["topic", "state", "key"], topics
        column = topics[0].index("state")
        assert all(line[column:].startswith(("exists", "created")) for line in topics[1:]), topics
        deadline = time.monotonic() + 30
        while "0 records behind" not in (overview := run_cli(env, "status").stdout):
            assert time.monotonic() < deadline, overview
            time.sleep(0.5)
        assert "1 node(s) answer" in overview and ": ready" in overview, overview
        assert "live worker 0 records behind the log of 19" in overview, overview
        assert "revenue v1" in overview and "0 dead letter(s) waiting" in overview, overview
        dead = run_cli(env, "dlq", "list").stdout.splitlines()
        assert dead[0].split() == ["dlq", "family", "type", "state", "error"], dead
        assert dead[-1] == "0 dead letters", dead


def test_local_ably_mode_publishes_to_a_stand_in_and_mints_tokens_for_it(tmp_path: Path) -> None:
    """`STREAMS_LOCAL_ABLY=1 make run`: the publisher and the token endpoint tried without Ably's
    cloud, against the stand-in that `make run` starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMS_", "GHL_", "ABLY_"))}
    env["STREAMS_DATA_DIR"] = str(tmp_path / "data")
    run_cli(env, "dev-key")
    env["GHL_WEBHOOK_ED25519_PUBLIC_KEY"] = str(tmp_path / "data" / "dev-key.pub.pem")
    secret = "app-secret-for-this-test-32-bytes-long"
    log = tmp_path / "make-run.log"
    local = {"STREAMS_LOCAL_ABLY": "1", "STREAMS_APP_JWT_SECRET": secret}
    with make_run(env | local, log) as port:
        [line] = [x for x in log.read_text().splitlines() if "local Ably stand-in on" in x]
        standin = line.split("local Ably stand-in on ")[1].split()[0]
        message = {
            "type": "InboundMessage",
            "locationId": "demo-location",
            "conversationId": "c1",
            "messageId": "m1",
            "direction": "inbound",
            "messageType": "SMS",
            "body": "hello",
            "dateAdded": "2026-12-04T10:00:00Z",
        }
        run_cli(env, "send", "-", stdin=json.dumps(message))

        def received() -> list[dict]:
            with urllib.request.urlopen(
                f"{standin}/_standin/messages?channel=location:demo-location", timeout=5
            ) as r:
                return [m for m in json.loads(r.read()) if m["name"] == "new-message"]

        deadline = time.monotonic() + 60
        while not received() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(received()) == 1, received()

        user = jwt.encode(
            {"sub": "u1", "locationId": "demo-location", "exp": int(time.time()) + 600},
            secret,
            algorithm="HS256",
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/realtime/token",
            method="POST",
            headers={"Authorization": f"Bearer {user}"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            token_request = json.loads(r.read())
        # The stand-in takes the signed TokenRequest, as Ably would from the app.
        exchange = urllib.request.Request(
            f"{standin}/keys/{token_request['keyName']}/requestToken",
            data=json.dumps(token_request).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(exchange, timeout=10) as r:
            details = json.loads(r.read())
        assert details["clientId"] == "u1" and "location:demo-location" in details["capability"]


@contextlib.contextmanager
def make_run(env: dict[str, str], log: Path) -> Iterator[int]:
    """`make run` on a free port, healthy; its port. Stopped, with all it started, on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=REPO,
        env=env | {"STREAMS_WEB_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_for_health(port, make, timeout=180) == {"status": "ok"}, log.read_text()
        yield port
    finally:
        children = descendants(make.pid)
        make.send_signal(signal.SIGTERM)
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            make.kill()
        for pid in children:
            if pid_alive(pid):
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
