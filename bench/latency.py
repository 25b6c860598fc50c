"""Row 4, end-to-end latency: `POST /webhooks/ghl` (signed, as HighLevel sends) to the
Ably-compatible stand-in (infra/ably-standin) receiving the `new-message` event the worker
derived from it. Deployed as in production: `streams ingress` takes the webhooks, one worker
folds and publishes. The stand-in stamps each message with its receive time (ms); the client notes
the send time of each webhook (same machine, same clock). Open loop: webhooks are sent on a
fixed schedule whatever the answers, so a slow worker shows as latency, not as a lower rate.

Steps: after a warm-up (500/s for 90 s), each rate held for `hold` seconds on fresh locations; a
webhook whose event has not arrived `drain` seconds after the step counts as lost (latency
infinite). The "highest rate held" search doubles the rate from 100/s until p99 reaches 100 ms.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from bench.common import worker_env
from bench.ingress import SigningKey
from streams.codec import dumps, loads
from streams.local_ably import standin_binary
from tests.integration.processes import free_port, http, start_worker, wait_for

__all__ = ["Step", "measure", "polling_reference"]

KEY = "bench.key:secret"
# 5 webhooks/s per location at 1,000/s: each location channel stays within Ably's 50 messages/s.
LOCATIONS = 200
LOADGEN = Path(__file__).parent / "loadgen"
# At 500/s before the first measured step. A fresh broker's CPU a webhook falls from about 1.5 ms
# in its first 40 s to 0.8-0.9 ms after 60 to 90 s as its JIT compiles (10-s windows, 2026-12-07);
# after 20 s of warm-up, 1,000/s measured p99 597 and 1,141 ms, after 90 s 318 and 373 ms.
WARM_UP_SECONDS = 90.0


@dataclass
class Step:
    rate: int
    hold: float
    sent: int
    latencies_ms: list[float]  # math.inf for lost

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def polling_reference() -> tuple[float, float, float]:
    """Today's app polls every 2 s: an event waits uniformly 0..2 s for the next poll (the
    backend's own write and query time not included). Modelled, not measured."""
    return 1000.0, 1900.0, 1980.0


def _standin(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = standin_binary()
    port = free_port()
    process = subprocess.Popen(
        [str(binary), "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, "ABLY_STANDIN_API_KEY": KEY},
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "standin.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http("GET", f"{url}/healthz")[0] == 200, timeout=30)
    return process, url


def loadgen_binary() -> Path:
    """bench/loadgen built for these sources (once: the binary's name carries their hash)."""
    sources = sorted(p for p in LOADGEN.glob("*") if p.name == "go.mod" or p.suffix == ".go")
    digest = hashlib.sha256(
        b"".join(p.read_bytes() for p in sources if not p.name.endswith("_test.go"))
    ).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    binary = cache / "streams" / "loadgen" / f"loadgen-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                ["go", "build", "-trimpath", "-o", f"{binary}.tmp", "."],
                cwd=LOADGEN,
                env=os.environ
                | {"CGO_ENABLED": "0", "GOPROXY": "off", "GOFLAGS": "-buildvcs=false"},
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            raise RuntimeError(
                f"building bench/loadgen failed (it needs Go 1.22+):\n{detail}"
            ) from None
        Path(f"{binary}.tmp").replace(binary)  # never a half-written binary under its name
    return binary


def send_messages(url: str, key: SigningKey, rate: int, hold: float, tag: str) -> dict[str, float]:
    """Post rate*hold InboundMessage webhooks on schedule; message id -> send time (ms).

    The requests are built and signed first (HighLevel's work, not the system's), then
    bench/loadgen sends them, on the two cores the system under test runs on: about half the CPU
    of the aiohttp client this process used until 2026-12-07 (bench/loadgen/main.go)."""
    ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="streams-bench-load-") as tmp:
        requests, sent_file = Path(tmp) / "requests", Path(tmp) / "sent"
        with requests.open("wb") as out:
            for n in range(int(rate * hold)):
                location = f"lat-{tag}-{n % LOCATIONS}"
                message_id = f"{tag}-m{n}"
                body, headers = key.signed(
                    dumps(
                        {
                            "type": "InboundMessage",
                            "locationId": location,
                            "conversationId": f"{location}-conv{n % 7}",
                            "messageId": message_id,
                            "body": "latency probe",
                            "messageType": "SMS",
                            "direction": "inbound",
                            "dateAdded": "2026-03-01T12:00:00Z",
                            "webhookId": f"wh-{message_id}",
                        }
                    )
                )
                out.write(dumps({"body": body.decode(), "headers": headers}) + b"\n")
                ids.append(message_id)
        subprocess.run(
            [
                str(loadgen_binary()),
                "--url",
                url,
                "--rate",
                str(rate),
                "--requests",
                str(requests),
                "--sent",
                str(sent_file),
            ],
            check=True,
        )
        lines = sent_file.read_text().splitlines()
    refused = sum(1 for line in lines if line.split()[1] != "200")
    if refused:
        print(f"{refused} of {len(lines)} webhooks not answered 200", flush=True)
    return {message_id: float(line.split()[0]) for message_id, line in zip(ids, lines, strict=True)}


def _received(standin: str, tag: str) -> dict[str, float]:
    """message id -> the stand-in's receive time (ms) of its `new-message` on the location."""
    auth = base64.b64encode(KEY.encode()).decode()
    received: dict[str, float] = {}
    for n in range(LOCATIONS):
        channel = urllib.parse.quote(f"location:lat-{tag}-{n}", safe="")
        base = f"/channels/{channel}/messages?direction=forwards&limit=1000"
        path = base
        while path:
            status, items = http("GET", standin + path, headers={"Authorization": f"Basic {auth}"})
            if status == 404 or not isinstance(items, list):
                break
            for item in items:
                if item.get("name") == "new-message":
                    data = item["data"]
                    data = loads(data) if isinstance(data, str) else data
                    received[data["message_id"]] = float(item["timestamp"])
            path = "" if len(items) < 1000 else f"{base}&start={int(items[-1]['timestamp'])}"
            if path and len(items) == 1000 and items[0]["timestamp"] == items[-1]["timestamp"]:
                break
    return received


def _step(
    worker_url: str, standin: str, key: SigningKey, rate: int, hold: float, drain: float
) -> Step:
    tag = f"r{rate}-{int(time.time())}"
    sent = send_messages(f"{worker_url}/webhooks/ghl", key, rate, hold, tag)
    deadline = time.monotonic() + drain
    received = _received(standin, tag)
    while len(received) < len(sent) and time.monotonic() < deadline:
        time.sleep(1)
        received = _received(standin, tag)
    latencies = [received[m] - at if m in received else math.inf for m, at in sent.items()]
    step = Step(rate, hold, len(sent), latencies)
    print(
        f"latency at {rate}/s for {hold:.0f}s: p50 {step.percentile(50):.0f} ms, "
        f"p99 {step.percentile(99):.0f} ms, {len(received)}/{len(sent)} arrived",
        flush=True,
    )
    return step


def measure(
    bootstrap: str,
    rates: list[int],
    hold: float,
    search_hold: float,
    drain: float,
    warm_up: float = WARM_UP_SECONDS,
) -> tuple[list[Step], Step | None]:
    """(the fixed-rate steps, the highest step of the search with p99 under 100 ms)."""
    with tempfile.TemporaryDirectory(prefix="streams-bench-lat-") as tmp:
        standin, standin_url = _standin(Path(tmp))
        key = SigningKey()
        env = worker_env(
            bootstrap,
            ABLY_API_KEY=KEY,
            ABLY_ENDPOINT=standin_url,
            GHL_WEBHOOK_ED25519_PUBLIC_KEY=key.public_pem,
        )
        worker = start_worker(env, Path(tmp) / "worker")
        ingress = start_worker(env, Path(tmp) / "ingress", "ingress")
        try:
            worker.wait_healthy()
            ingress.wait_healthy()
            # Warm up connections and the broker's JIT: a broker is measured warm, as it runs in
            # production (a fresh one is slower for its first minute and a half).
            _step(ingress.url, standin_url, key, 500, warm_up, drain)
            held: Step | None = None
            rate = 100
            while rate <= 12_800:
                step = _step(ingress.url, standin_url, key, rate, search_hold, drain)
                if step.percentile(99) >= 100:
                    break
                held, rate = step, rate * 2
            steps = [_step(ingress.url, standin_url, key, r, hold, drain) for r in rates]
            return steps, held
        finally:
            ingress.stop()
            worker.stop()
            standin.terminate()
            standin.wait(10)
