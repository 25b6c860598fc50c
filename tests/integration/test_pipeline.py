"""The core pipeline against real services: signed webhooks into running workers on the Kafka
container, projections through the HTTP API and the CLI, derived events at the Ably-compatible
stand-in, queries routed between two workers, and the realtime token."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from pathlib import Path

import jwt
from aiokafka import AIOKafkaProducer

from streams.derived import STATE_EVENTS
from streams.topics import RAW_WEBHOOKS
from tests.integration.processes import REPO, Worker, http, start_worker, wait_for
from tests.integration.services import AblyServer
from tests.integration.webhooks import (
    API_TOKEN,
    JWT_SECRET,
    SIGNING_KEY,
    ably_messages,
    committed_twice,
    dead_letter_for,
    derived_records,
    post_webhook,
    query,
    raw_log_size,
    webhook_env,
)


async def test_webhooks_to_projections_queries_and_ably(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    env = webhook_env(kafka_bootstrap, ably_server)
    http("DELETE", f"http://{ably_server.address}/_standin/messages")
    run = uuid.uuid4().hex[:6]
    loc_a, loc_b = f"A{run}", f"B{run}"
    first = start_worker(env, tmp_path / "worker-1")
    second: Worker | None = None
    try:
        first.wait_healthy()
        settings = {
            "type": "LocationSettingsUpdated",
            "locationId": loc_a,
            "timezone": "America/New_York",
            "timestamp": "2026-03-01T00:00:00Z",
        }
        status, _ = http(
            "POST",
            f"{first.url}/v1/events",
            json.dumps(settings).encode(),
            {"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert status == 200
        assert http("POST", f"{first.url}/v1/events", b"{}", {})[0] == 401

        before = await raw_log_size(kafka_bootstrap)
        refused = post_webhook(
            first, {"type": "ContactCreate", "locationId": loc_a, "id": "x"}, sign=False
        )
        assert refused[0] == 401 and "signature" in refused[1]["error"]
        forged = {"type": "ContactCreate", "locationId": loc_a, "id": "x"}
        body = json.dumps(forged).encode()
        other = base64.b64encode(SIGNING_KEY.sign(body + b" ")).decode()
        assert http("POST", f"{first.url}/webhooks/ghl", body, {"X-GHL-Signature": other})[0] == 401
        assert post_webhook(first, ["not", "an", "object"])[0] == 400  # type: ignore[arg-type]
        huge = post_webhook(first, {"type": "Note", "locationId": loc_a, "body": "x" * 1_100_000})
        assert huge[0] == 413, huge
        assert await raw_log_size(kafka_bootstrap) == before  # nothing written for any of them

        traffic = [
            {
                "type": "ContactCreate",
                "locationId": loc_a,
                "id": "c1",
                "assignedTo": "u1",
                "email": "ann@example.com",
                "phone": "+15550001111",
                "name": "Ann",
                "dateAdded": "2026-03-02T03:00:00Z",
            },  # March 1st in New York
            {
                "type": "ContactCreate",
                "locationId": loc_b,
                "id": "c2",
                "dateAdded": "2026-03-02T03:00:00Z",
            },
            {
                "type": "InboundMessage",
                "locationId": loc_a,
                "conversationId": "conv1",
                "contactId": "c1",
                "messageId": "m1",
                "body": "mail me at ann@example.com",
                "dateAdded": "2026-03-02T10:00:00Z",
                "webhookId": f"{run}-m1",
            },
            {
                "type": "InboundMessage",
                "locationId": loc_a,
                "conversationId": "conv1",
                "contactId": "c1",
                "messageId": "m2",
                "body": "hello?",
                "dateAdded": "2026-03-02T10:01:00Z",
            },
            {
                "_id": "inv1",
                "status": "partially_paid",
                "amountPaid": 100.1,
                "currency": "USD",
                "altId": loc_a,
                "altType": "location",
                "updatedAt": "2026-03-02T03:00:00Z",
                "contactDetails": {"id": "c1"},
            },
            {
                "_id": "inv1",
                "status": "paid",
                "amountPaid": 250,
                "currency": "USD",
                "altId": loc_a,
                "altType": "location",
                "updatedAt": "2026-03-02T15:00:00Z",
                "contactDetails": {"id": "c1"},
            },
            {
                "_id": "inv2",
                "status": "paid",
                "amountPaid": 1500,
                "currency": "JPY",
                "altId": loc_b,
                "altType": "location",
                "updatedAt": "2026-03-02T15:00:00Z",
            },
        ]
        # Contacts first, and known before the rest: other families read the assignment as it
        # stands when they process a record (the contacts agent runs beside them).
        for payload in traffic[:2]:
            assert post_webhook(first, payload)[0] == 200
        assert wait_for(lambda: query(first, loc_a, "leads")[1].get("total") == 1)
        poison = {
            "_id": "bad",
            "status": "paid",
            "amountPaid": "lots",
            "currency": "USD",
            "altId": loc_a,
            "altType": "location",
            "webhookId": f"{run}-poison",
        }
        assert post_webhook(first, poison)[0] == 200  # valid JSON: the log takes it
        for payload in traffic[2:]:
            assert post_webhook(first, payload)[0] == 200
        assert post_webhook(first, traffic[2])[0] == 200  # HighLevel redelivers: counts once

        revenue_a = {
            "location_id": loc_a,
            "from": None,
            "to": None,
            "days": [
                {"date": "2026-03-01", "currency": "USD", "amount": "100.10"},
                {"date": "2026-03-02", "currency": "USD", "amount": "149.90"},
            ],
            "totals": {"USD": "250.00"},
        }
        assert wait_for(lambda: query(first, loc_a, "revenue") == (200, revenue_a)), query(
            first, loc_a, "revenue"
        )
        unread_a = {
            "location_id": loc_a,
            "total": 2,
            "conversations": {"conv1": 2},
            "users": {"u1": 2},
        }
        assert wait_for(lambda: query(first, loc_a, "unread") == (200, unread_a)), query(
            first, loc_a, "unread"
        )
        # Each family is its own agent: wait for the contacts agent as well.
        assert wait_for(
            lambda: query(first, loc_a, "leads")[1]["days"] == [{"date": "2026-03-01", "count": 1}]
        ), query(first, loc_a, "leads")
        assert query(first, loc_a, "revenue", token=None)[0] == 401
        assert query(first, loc_a, "revenue", token="wrong")[0] == 401
        bad_range = http(
            "GET",
            f"{first.url}/v1/locations/{loc_a}/revenue?from=March",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert bad_range[0] == 400 and "from" in bad_range[1]["error"]

        # The poison record went to the dead letters with its reason; the partition moved on.
        dead = await dead_letter_for(kafka_bootstrap, f"{run}-poison")
        assert b"amountPaid" in dead["error"] and dead["family"] == b"payments"
        assert dead["source-topic"] == RAW_WEBHOOKS.name.encode()

        # A type no family knows stays in the log and is counted; bytes nobody can read, written
        # without headers by some other producer, go to the dead letters.
        novel = {"type": "SomethingNew", "locationId": loc_a}
        assert (
            http(
                "POST",
                f"{first.url}/v1/events",
                json.dumps(novel).encode(),
                {"Authorization": f"Bearer {API_TOKEN}"},
            )[0]
            == 200
        )
        garbage = f"\x00not json {run}".encode()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        await producer.send_and_wait(RAW_WEBHOOKS.name, garbage, key=loc_a.encode())
        await producer.stop()
        dead = await dead_letter_for(kafka_bootstrap, value=garbage)
        assert dead["family"] == b"unknown" and b"not a JSON object" in dead["error"]
        assert wait_for(
            lambda: (
                'streams_unknown_types_total{type="SomethingNew"} 1'
                in http("GET", f"{first.url}/metrics")[1]
            )
        )

        # The derived events reached the Ably-compatible server, on the right channels.
        expected_events = {
            ("new-message", f"location:{loc_a}"): 2,
            ("new-message", "user:u1"): 2,
            ("unread-changed", f"location:{loc_a}"): 2,
            ("unread-changed", "user:u1"): 2,
            ("payment-received", f"location:{loc_a}"): 2,
            ("payment-received", "user:u1"): 2,
            ("revenue-update", f"location:{loc_a}"): 2,
            ("payment-received", f"location:{loc_b}"): 1,
            ("revenue-update", f"location:{loc_b}"): 1,
            ("lead-alert", f"location:{loc_a}"): 1,
            ("lead-alert", "user:u1"): 1,
            ("lead-alert", f"location:{loc_b}"): 1,
            # A feed entry per activity webhook (the poison invoice too: HighLevel said it).
            ("activity", f"location:{loc_a}"): 6,
            ("activity", f"location:{loc_b}"): 2,
        }
        ours = {f"location:{loc_a}", f"location:{loc_b}", "user:u1"}

        def received() -> dict[tuple[str, str], int]:
            counts: dict[tuple[str, str], int] = {}
            for message in ably_messages(ably_server):
                key = (message["name"], message["channel"])
                if message["channel"] in ours:
                    counts[key] = counts.get(key, 0) + 1
            return counts

        def as_expected() -> bool:
            # A state event may be conflated with the next one of its subject (two messages in
            # a row): at least one arrives, never more than were derived; the rest exactly.
            got = received()
            return set(got) == set(expected_events) and all(
                1 <= got[k] <= n if k[0] in STATE_EVENTS else got[k] == n
                for k, n in expected_events.items()
            )

        assert wait_for(as_expected, timeout=30), {
            k: (received().get(k), n)
            for k, n in {**received(), **expected_events}.items()
            if received().get(k) != expected_events.get(k)
        }
        messages = [m for m in ably_messages(ably_server) if m["channel"] in ours]
        # Once where a repeat would show (the stand-in, as Ably, drops a repeated id): each of
        # this run's location-channel events derived exactly as often as expected, ids once.
        derived = [e for e in await derived_records(kafka_bootstrap, "") if e["channel"] in ours]
        assert committed_twice(derived) == []
        by_kind: dict[tuple[str, str], int] = {}
        for event in derived:
            if event["channel"].startswith("location:"):
                kind = (event["name"], event["channel"])
                by_kind[kind] = by_kind.get(kind, 0) + 1
        assert by_kind == {k: n for k, n in expected_events.items() if k[1] != "user:u1"}
        last_unread = [m for m in messages if m["name"] == "unread-changed"][-1]
        assert json.loads(last_unread["data"])["unread"] == 2  # the final count
        for message in messages:
            if message["channel"].startswith("location:"):
                text = json.dumps(message["data"])
                assert "@example.com" not in text and "+1555" not in text, message

        # A second worker: partitions split between the two, every query answered by both.
        second = start_worker(env, tmp_path / "worker-2")
        second.wait_healthy()
        first.wait_healthy()
        for worker in (first, second):
            assert wait_for(
                lambda w=worker: query(w, loc_a, "revenue") == (200, revenue_a), timeout=60
            ), query(worker, loc_a, "revenue")
            assert query(worker, loc_b, "revenue")[1]["totals"] == {"JPY": "1500"}
            assert query(worker, loc_b, "leads")[1]["total"] == 1

        # The CLI gives the same JSON as the API.
        cli = subprocess.run(
            [str(REPO / ".venv/bin/streams"), "query", "revenue", "--location", loc_a, "--json"],
            env={**env, "STREAMS_WEB_PORT": str(second.port), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == revenue_a

        # The realtime token: exactly the user's and the location's channels.
        app_jwt = jwt.encode(
            {"sub": "u1", "locationId": loc_a, "exp": int(time.time()) + 60},
            JWT_SECRET,
            algorithm="HS256",
        )
        status, token = http(
            "POST", f"{first.url}/v1/realtime/token", b"", {"Authorization": f"Bearer {app_jwt}"}
        )
        assert status == 200, token
        assert json.loads(token["capability"]) == {
            "user:u1": ["subscribe"],
            f"location:{loc_a}": ["presence", "subscribe"],
            f"typing:{loc_a}": ["presence", "publish", "subscribe"],
        }
        assert token["clientId"] == "u1" and ably_server.key.split(":")[1] not in json.dumps(token)
        assert (
            http("POST", f"{first.url}/v1/realtime/token", b"", {"Authorization": "Bearer nope"})[0]
            == 401
        )
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.stop()
