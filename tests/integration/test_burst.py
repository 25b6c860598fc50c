"""Ably's per-channel limit under a burst: 500 webhooks in about a second for one location.

Every channel stays at or under 50 messages in any second at the Ably-compatible stand-in (its
receive times), every discrete event reaches Ably once and in order, and the last state event on
each channel carries the final numbers: the query API's, and the newest the worker derived.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from streams.derived import STATE_EVENTS, state_subject
from tests.integration.processes import http, start_worker
from tests.integration.services import AblyServer
from tests.integration.webhooks import (
    ably_messages,
    committed_twice,
    consumed_after,
    derived_records,
    post_webhook,
    query,
    record_figures,
    signature,
    webhook_env,
)
from tests.traffic import generate

RATE = 50  # Ably's default per-channel limit, and the publisher's default


def busiest_second(timestamps: list[int]) -> int:
    """The most messages with receive times (ms) inside any one second."""
    times = sorted(timestamps)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1000:
            first += 1
        most = max(most, last - first + 1)
    return most


def subject(message: dict[str, Any]) -> tuple[Any, ...]:
    return (message["name"], state_subject(message))


async def test_a_burst_for_one_location_keeps_every_channel_under_its_limit(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    tag = f"b{uuid.uuid4().hex[:6]}"
    settings, *burst = generate(501, locations=1, prefix=tag, seed=21)
    location = settings["locationId"]
    worker = start_worker(webhook_env(kafka_bootstrap, ably_server), tmp_path / "worker")
    try:
        worker.wait_healthy()
        assert post_webhook(worker, settings)[0] == 200

        def post(body: dict[str, Any]) -> int:
            raw = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", "X-GHL-Signature": signature(raw)}
            return http("POST", f"{worker.url}/webhooks/ghl", raw, headers)[0]

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:  # as fast as the ingress takes them
            statuses = list(pool.map(post, burst))
        sent_in = time.monotonic() - started
        assert statuses == [200] * len(burst)

        # Settled: every webhook folded, and every discrete event derived from them at Ably.
        await consumed_after(kafka_bootstrap, timeout=300)
        deadline = time.monotonic() + 180
        while True:
            derived = await derived_records(kafka_bootstrap, tag)
            seen = ably_messages(ably_server, tag)
            discrete = {e["id"] for e in derived if e["name"] not in STATE_EVENTS}
            metrics = http("GET", f"{worker.url}/metrics")[1]
            if discrete <= {m["id"] for m in seen} and "streams_publish_waiting 0" in metrics:
                break
            assert time.monotonic() < deadline, (len(discrete), len(seen), worker.tail(2000))
            await asyncio.sleep(1)
        seen = [
            {**m, "data": json.loads(m["data"]) if m.get("encoding") == "json" else m["data"]}
            for m in ably_messages(ably_server, tag)
        ]
        delivered_in = time.monotonic() - started
        # Once where a repeat would show (the stand-in, as Ably, drops a repeated id).
        assert committed_twice(derived) == []

        by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in sorted(seen, key=lambda m: (m["timestamp"], m["serial"])):
            by_channel[message["channel"]].append(message)
        derived_by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in derived:
            if event["id"] not in {e["id"] for e in derived_by_channel[event["channel"]]}:
                derived_by_channel[event["channel"]].append(event)  # re-emissions counted once
        busiest = {c: busiest_second([m["timestamp"] for m in ms]) for c, ms in by_channel.items()}
        assert max(busiest.values()) <= RATE, busiest
        assert busiest[f"location:{location}"] == RATE, "the burst never reached the limit"

        for channel, events in derived_by_channel.items():
            got = by_channel[channel]
            ids = [m["id"] for m in got]
            assert len(ids) == len(set(ids)), f"{channel}: a message arrived twice"
            # Discrete events: all of them, once, in the order the worker derived them.
            assert [m["id"] for m in got if m["name"] not in STATE_EVENTS] == [
                e["id"] for e in events if e["name"] not in STATE_EVENTS
            ], channel
            # State events: the last of each subject is the newest derived.
            newest = {subject(e): e["data"] for e in events if e["name"] in STATE_EVENTS}
            last = {subject(m): m["data"] for m in got if m["name"] in STATE_EVENTS}
            assert last == newest, channel

        # ... and they are the final numbers the queries answer.
        on_location = by_channel[f"location:{location}"]
        unread = query(worker, location, "unread")[1]
        last_unread = [m["data"] for m in on_location if m["name"] == "unread-changed"][-1]
        assert last_unread["location_total"] == unread["total"]
        revenue = query(worker, location, "revenue")[1]
        last_revenue = {
            (m["data"]["date"], m["data"]["currency"]): m["data"]["amount"]
            for m in on_location
            if m["name"] == "revenue-update"
        }
        answered = {(d["date"], d["currency"]): d["amount"] for d in revenue["days"]}
        assert answered, revenue
        # The API leaves out days that came to zero.
        assert last_revenue == answered | {
            k: v for k, v in last_revenue.items() if k not in answered and Decimal(v) == 0
        }

        states = sum(1 for e in derived if e["name"] in STATE_EVENTS)
        record_figures(
            "burst",
            webhooks=len(burst),
            sent_seconds=round(sent_in, 2),
            delivered_seconds=round(delivered_in, 2),
            derived=len(derived),
            delivered=len(seen),
            state_events=states,
            superseded=states - sum(1 for m in seen if m["name"] in STATE_EVENTS),
            busiest_second=busiest,
        )
    finally:
        worker.stop()
