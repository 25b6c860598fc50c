"""Faults injected for real, each with its count of events in and out: a worker killed with
SIGKILL in the middle of thousands of webhooks, the Ably-compatible server down and then answering
5xx and 429, Kafka unreachable at ingress. Figures go to .build/reliability-figures.jsonl."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from streams.broker import LocalKafka
from streams.derived import STATE_EVENTS
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.processes import Worker, free_port, http, start_worker, wait_for
from tests.integration.services import TEST_PARTITIONS, AblyServer
from tests.integration.webhooks import (
    Delivery,
    ably_messages,
    committed_twice,
    dead_letter_for,
    deliver,
    derived_records,
    post_webhook,
    query,
    raw_log_size,
    raw_webhook_ids,
    record_figures,
    standin_stats,
    webhook_env,
)
from tests.traffic import (
    STATE_NOTIFICATIONS,
    expected,
    format_minor,
    generate,
    location_notifications,
)


def poison(location: str, webhook_id: str) -> dict[str, Any]:
    """Valid JSON a projection cannot use: an amount that is not a number."""
    return {
        "_id": f"{webhook_id}-inv",
        "status": "paid",
        "amountPaid": "lots",
        "currency": "USD",
        "altId": location,
        "altType": "location",
        "webhookId": webhook_id,
    }


def projections_match(worker: Worker, want: dict[str, dict[str, Any]]) -> list[str]:
    """The locations whose answers differ from the reference (empty when all match)."""
    wrong = []
    for location, answer in sorted(want.items()):
        answers = [query(worker, location, kind) for kind in ("revenue", "unread", "leads")]
        # A 503 (a partition being restored, its owner moving) is not an answer yet: wrong, so
        # far, and asked again by the callers' wait_for.
        if any(status != 200 or "error" in answer for status, answer in answers):
            wrong.append(f"{location}: {[(status, answer) for status, answer in answers]}")
            continue
        (_, revenue), (_, unread), (_, leads) = answers
        got_revenue = {(d["date"], d["currency"]): d["amount"] for d in revenue["days"]}
        want_revenue = {k: format_minor(v, k[1]) for k, v in answer["revenue"].items()}
        got_leads = {d["date"]: d["count"] for d in leads["days"]}
        differences = [
            f"{name} (got, want): "
            + str(
                {
                    k: (got.get(k), want_.get(k))
                    for k in {*got, *want_}
                    if got.get(k) != want_.get(k)
                }
            )
            for name, got, want_ in (
                ("revenue", got_revenue, want_revenue),
                ("unread", unread["conversations"], answer["unread"]),
                ("leads", got_leads, answer["leads"]),
            )
            if got != want_
        ]
        if differences:
            # The location first, so a failure shows which ones and how the first one differs.
            wrong.append(location if wrong else f"{location}: {'; '.join(differences)}"[:2000])
    return wrong


def notifications_wrong(
    ably: AblyServer, prefix: str, bodies: list[dict[str, Any]]
) -> dict[str, Any]:
    """How what subscribers of the location channels saw differs from what `bodies` call for
    ({} when it does not): discrete events exactly, each once; a state event at least once and
    at most as often as it changed (the publisher conflates them under Ably's per-channel rate),
    the last of each subject carrying the final figure the reference computes."""
    calls_for = Counter(location_notifications(bodies))
    messages = sorted(
        (m for m in ably_messages(ably, prefix) if m["channel"].startswith("location:")),
        key=lambda m: (m["timestamp"], m["serial"]),
    )
    seen = Counter((m["name"], m["channel"]) for m in messages)
    wrong: dict[str, Any] = {}
    for name, channel in set(calls_for) | set(seen):
        got, want = seen[name, channel], calls_for[name, channel]
        if name in STATE_NOTIFICATIONS and min(1, want) <= got <= want:
            continue
        if got != want:
            wrong[f"{name} {channel} (seen, called for)"] = (got, want)
    final = expected(bodies)
    for message in messages:  # the last one of each subject wins
        if message["name"] not in STATE_NOTIFICATIONS:
            continue
        data = json.loads(message["data"]) if message.get("encoding") == "json" else message["data"]
        answer = final.get(data["location_id"], {})
        if message["name"] == "unread-changed":
            subject = f"unread {data['location_id']} {data['conversation_id']}"
            figures = (data["unread"], answer.get("unread", {}).get(data["conversation_id"], 0))
        else:
            subject = f"revenue {data['location_id']} {data['date']} {data['currency']}"
            minor = answer.get("revenue", {}).get((data["date"], data["currency"]), 0)
            figures = (data["amount"], format_minor(minor, data["currency"]))
        wrong.pop(subject, None)
        if figures[0] != figures[1]:
            wrong[subject] = figures  # (last seen, final)
    return wrong


async def test_kill_9_mid_stream_loses_nothing_and_notifies_once(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = f"k{uuid.uuid4().hex[:6]}"
    bodies = generate(3000, locations=6, prefix=run, seed=11)
    want = expected(bodies)
    poisons = [poison(f"{run}{n}", f"{run}-poison-{n}") for n in range(3)]
    traffic = bodies[:500] + poisons[:1] + bodies[500:2000] + poisons[1:] + bodies[2000:]
    notifications = location_notifications(traffic)  # poisons make feed entries too
    env = webhook_env(kafka_bootstrap, ably_server)
    await ensure_topics(kafka_bootstrap, partitions=TEST_PARTITIONS, replication_factor=1)
    stats_before, raw_before = standin_stats(ably_server), await raw_log_size(kafka_bootstrap)
    port, data = free_port(), tmp_path / "worker"
    worker = start_worker(env, data, port=port)
    try:
        worker.wait_healthy()
        delivery = Delivery()
        sender = threading.Thread(
            target=deliver, args=(traffic, lambda: [worker.url], delivery), daemon=True
        )
        sender.start()
        assert wait_for(lambda: delivery.accepted >= len(traffic) // 3, timeout=300)
        worker.kill()  # kill -9 while webhooks keep arriving
        accepted_at_kill = delivery.accepted
        worker = start_worker(env, data, port=port)
        worker.wait_healthy(timeout=240)
        sender.join(timeout=600)
        assert not sender.is_alive() and delivery.accepted == len(traffic), delivery

        wrong = wait_for(lambda: not projections_match(worker, want), timeout=300)
        assert wrong, projections_match(worker, want)
        for webhook in poisons:  # dead-lettered with the reason, and the partitions moved on
            dead = await dead_letter_for(kafka_bootstrap, webhook["webhookId"])
            assert b"amountPaid" in dead["error"]

        # Every location-channel notification the traffic calls for reached the server, and a
        # subscriber sees each exactly once.
        assert wait_for(lambda: not notifications_wrong(ably_server, run, traffic), 240), (
            notifications_wrong(ably_server, run, traffic)
        )
        seen = ably_messages(ably_server, run)
        assert len({m["id"] for m in seen}) == len(seen)
        emitted = await derived_records(kafka_bootstrap, run)
        # Once where a repeat would show (the stand-in, as Ably, drops a repeated id).
        assert committed_twice(emitted) == []
        # User channels too: every discrete event derived was published, and nothing else.
        assert {e["id"] for e in emitted if e["name"] not in STATE_EVENTS} == {
            m["id"] for m in seen if m["name"] not in STATE_EVENTS
        }
        assert {m["id"] for m in seen} <= {e["id"] for e in emitted}
        stats_after = standin_stats(ably_server)
        record_figures(
            "kill -9 worker mid-stream",
            faults={"SIGKILL worker": 1, "accepted before the kill": accepted_at_kill},
            webhooks_in=len(traffic),
            poison_records=len(poisons),
            retried_answers=dict(delivery.retried),
            raw_records_written=await raw_log_size(kafka_bootstrap) - raw_before,
            derived_emitted=len(emitted),
            derived_distinct=len({e["id"] for e in emitted}),
            published_seen_by_subscribers=len(seen),
            expected_location_notifications=sum(notifications.values()),
            deduplicated_by_server=stats_after["deduplicated"] - stats_before["deduplicated"],
            lost=len(notifications_wrong(ably_server, run, traffic)),
            duplicated=len(seen) - len({m["id"] for m in seen}),
        )
    finally:
        worker.stop()


async def test_ably_down_then_5xx_and_429_publisher_backs_off_and_delivers_in_order(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = f"a{uuid.uuid4().hex[:6]}"
    bodies = generate(400, locations=3, prefix=run, seed=5)
    notifications = location_notifications(bodies)
    env = webhook_env(kafka_bootstrap, ably_server)
    await ensure_topics(kafka_bootstrap, partitions=TEST_PARTITIONS, replication_factor=1)
    standin = f"http://{ably_server.address}/_standin"
    as_json = {"Content-Type": "application/json"}
    worker = start_worker(env, tmp_path / "worker")
    try:
        worker.wait_healthy()
        before = standin_stats(ably_server)

        def stat(name: str) -> int:
            return standin_stats(ably_server)[name] - before[name]

        # Down: every connection closed unanswered while the webhooks come in.
        assert http("POST", f"{standin}/faults", b'{"status": 0, "seconds": 5}', as_json)[0] == 200
        deliver(bodies, lambda: [worker.url])
        assert wait_for(lambda: stat("dropped") >= 1, timeout=60)
        assert wait_for(lambda: http("GET", f"{standin}/faults")[1]["dropSecondsLeft"] <= 0)
        # Then answering 503, 500 and 429, one publish attempt each.
        injected = {"dropped": stat("dropped")}
        for status in (503, 500, 429):
            faulted = stat("faulted")
            body = f'{{"status": {status}, "count": 1}}'.encode()
            assert http("POST", f"{standin}/faults", body, as_json)[0] == 200
            assert wait_for(lambda f=faulted: stat("faulted") > f, timeout=90), status
            injected[str(status)] = 1
        assert http("GET", f"{standin}/faults")[1]["remaining"] == 0

        assert wait_for(lambda: not notifications_wrong(ably_server, run, bodies), 120), (
            notifications_wrong(ably_server, run, bodies)
        )
        # Backing off: a handful of attempts while it was down, not a busy loop.
        assert injected["dropped"] <= 12, injected
        # Per-channel order: each channel's subscriber saw the events of each location in the
        # order the projections emitted them, nothing skipped. (A location's events go to the
        # derived partition of its raw partition; a user of several locations gets each one's
        # events in its log's order, with no order between the logs.)
        emitted = await derived_records(kafka_bootstrap, run)
        messages = ably_messages(ably_server, run)
        for channel, partition in {(e["channel"], e["source"]["partition"]) for e in emitted}:
            order = list(  # discrete events: state events may be conflated
                dict.fromkeys(
                    e["id"]
                    for e in emitted
                    if e["channel"] == channel
                    and e["source"]["partition"] == partition
                    and e["name"] not in STATE_EVENTS
                )
            )
            ids = set(order)
            assert [m["id"] for m in messages if m["id"] in ids] == order, (channel, partition)
        retries = [
            line
            for line in http("GET", f"{worker.url}/metrics")[1].splitlines()
            if line.startswith("streams_publish_retries_total")
        ]
        record_figures(
            "Ably-compatible server down, then 503, 500, 429",
            faults=injected,
            webhooks_in=len(bodies),
            derived_emitted=len(emitted),
            derived_distinct=len({e["id"] for e in emitted}),
            published_seen_by_subscribers=len(messages),
            expected_location_notifications=sum(notifications.values()),
            publisher_retry_metric=retries,
            lost=len(
                {e["id"] for e in emitted if e["name"] not in STATE_EVENTS}
                - {m["id"] for m in messages}
            ),
            duplicated=len(messages) - len({m["id"] for m in messages}),
        )
    finally:
        http("DELETE", f"{standin}/faults")
        worker.stop()


async def test_kafka_unreachable_at_ingress_answers_503_then_recovers_without_restart(
    ably_server: AblyServer, tmp_path: Path
) -> None:
    kafka = LocalKafka(tmp_path / "kafka", libs=Settings.from_env({}).kafka_libs)
    kafka.start()
    worker: Worker | None = None
    try:
        await kafka.wait_ready()
        run = f"u{uuid.uuid4().hex[:6]}"
        location = f"{run}0"

        def contact(n: int) -> dict[str, Any]:
            return {
                "type": "ContactCreate",
                "locationId": location,
                "id": f"{run}-c{n}",
                "dateAdded": "2026-03-02T10:00:00Z",
                "webhookId": f"{run}-wh{n}",
            }

        worker = start_worker(webhook_env(kafka.bootstrap, ably_server), tmp_path / "worker")
        worker.wait_healthy()
        answers: dict[str, list[int]] = {}

        def post(n: int) -> int:
            status = post_webhook(worker, contact(n))[0]  # type: ignore[arg-type]
            answers.setdefault(contact(n)["webhookId"], []).append(status)
            return status

        assert all(post(n) == 200 for n in range(10))
        kafka.stop_node(1, kill=True)  # Kafka unreachable
        # At once: each waits out the ingress's deadline for Kafka's acknowledgement (10 s).
        with ThreadPoolExecutor(5) as posting:
            refused = list(posting.map(post, range(10, 15)))
        assert refused == [503] * 5, (refused, f"worker exit code: {worker.process.poll()}")
        kafka.start_node(1)
        await kafka.wait_ready()
        # The same worker process takes webhooks again once Kafka is back; HighLevel retries.
        assert wait_for(lambda: post(10) == 200, timeout=180, interval=2), answers
        assert all(post(n) == 200 for n in range(11, 20))
        assert worker.process.poll() is None
        worker.wait_healthy(timeout=180)

        logged = await raw_webhook_ids(kafka.bootstrap)
        accepted = {w for w, statuses in answers.items() if 200 in statuses}
        assert accepted <= set(logged)  # never a 200 for an unwritten webhook
        assert wait_for(lambda: query(worker, location, "leads")[1].get("total") == 20, timeout=180)
        record_figures(
            "Kafka unreachable at ingress",
            faults={"SIGKILL the only broker": 1},
            webhooks_posted=sum(len(s) for s in answers.values()),
            answered_503_while_down=refused.count(503),
            answered_200_while_down=refused.count(200),
            retries_until_recovered=len(answers[contact(10)["webhookId"]]) - 1,
            accepted=len(accepted),
            in_raw_log=sum(logged[w] for w in accepted),
            written_despite_503=sum(
                1 for n in range(11, 15) if logged[contact(n)["webhookId"]] > 1
            ),
            lost=len(accepted - set(logged)),
            leads_counted=20,
        )
    finally:
        if worker is not None:
            worker.stop()
        kafka.stop()
