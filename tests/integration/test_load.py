"""Sustained load (`make test-long`): ten minutes of signed webhooks at a realistic rate into one
worker. Ingress answers 99.9% of first attempts with 200 (HighLevel pauses deliveries to endpoints
under 90%), every projection equals the reference afterwards, and the worker's memory stays
within the stated bound."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from streams.topics import raw_key
from tests.integration.processes import http, start_worker, wait_for
from tests.integration.services import AblyServer
from tests.integration.test_faults import projections_match
from tests.integration.webhooks import consumed_after, record_figures, signature, webhook_env
from tests.traffic import expected, generate

pytestmark = pytest.mark.long

SECONDS = float(os.environ.get("STREAMS_LOAD_SECONDS", 600))
RATE = 40.0  # webhooks per second: a busy agency's HighLevel account, sustained
LOCATIONS = 20
WARM_UP = 120.0  # seconds before the memory baseline is taken
# The bound: after warm-up, resident memory grows by at most this much over the rest of the run
# (tables live in RocksDB, outside the Python heap; what grows here is caches and leaks).
GROWTH_BOUND_MIB = 96.0


async def test_ten_minutes_of_webhooks_at_a_realistic_rate(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = f"l{uuid.uuid4().hex[:6]}"
    bodies = generate(int(SECONDS * RATE), locations=LOCATIONS, prefix=run, seed=13)
    worker = start_worker(webhook_env(kafka_bootstrap, ably_server), tmp_path / "worker")
    try:
        worker.wait_healthy()
        per_location: dict[bytes | None, list[bytes]] = defaultdict(list)
        for body in bodies:
            per_location[raw_key(body)].append(json.dumps(body).encode())
        first_attempts = {"ok": 0, "failed": 0}
        lock = threading.Lock()
        start = time.monotonic()

        def send(raws: list[bytes]) -> None:
            # Each location paced evenly over the run, its bodies in order; a failed delivery is
            # retried as HighLevel does, but only the first attempt counts towards success.
            interval = SECONDS / len(raws)
            for n, raw in enumerate(raws):
                time.sleep(max(0.0, start + n * interval - time.monotonic()))
                headers = {"Content-Type": "application/json", "X-GHL-Signature": signature(raw)}
                first = True
                while http("POST", f"{worker.url}/webhooks/ghl", raw, headers)[0] != 200:
                    if first:
                        with lock:
                            first_attempts["failed"] += 1
                    first = False
                    time.sleep(1)
                if first:
                    with lock:
                        first_attempts["ok"] += 1

        threads = [threading.Thread(target=send, args=(r,)) for r in per_location.values()]
        for thread in threads:
            thread.start()
        memory: list[tuple[float, float]] = []
        while any(thread.is_alive() for thread in threads):
            assert worker.process.poll() is None, worker.tail()
            memory.append((time.monotonic() - start, worker.rss_mib()))
            for thread in threads:
                thread.join(timeout=10 / len(threads))
        elapsed = time.monotonic() - start

        total = first_attempts["ok"] + first_attempts["failed"]
        success = first_attempts["ok"] / total
        # Then every projection catches up (the group commits past the end of the log) and
        # answers exactly what the reference does.
        caught_up = await consumed_after(kafka_bootstrap)
        want = expected(bodies)
        wrong = projections_match(worker, want)
        if wrong:  # answers may trail the commit by a moment
            wait_for(lambda: not projections_match(worker, want), timeout=120)
            wrong = projections_match(worker, want)
        baseline = max(rss for t, rss in memory if t <= WARM_UP)
        peak = max(rss for _, rss in memory)
        record_figures(
            "sustained load",
            seconds=round(elapsed),
            rate_per_second=round(total / elapsed, 1),
            webhooks_in=total,
            first_attempt_200=first_attempts["ok"],
            first_attempt_failed=first_attempts["failed"],
            success_ratio=round(success, 5),
            seconds_to_catch_up_after_sending=round(caught_up),
            locations_wrong=len(wrong),
            rss_mib={
                "at_warm_up": round(baseline),
                "peak": round(peak),
                "end": round(memory[-1][1]),
            },
            growth_bound_mib=GROWTH_BOUND_MIB,
        )
        assert total == len(bodies)
        assert success >= 0.999, first_attempts
        assert not wrong, wrong
        assert peak - baseline <= GROWTH_BOUND_MIB, memory
    finally:
        worker.stop()
