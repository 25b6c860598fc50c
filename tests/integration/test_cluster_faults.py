"""Two workers on the three-node cluster (replication 3, min ISR 2, `acks=all`): one worker
killed with SIGKILL mid-stream, its partitions move and every location stays answerable; then one
broker of three stopped: ingress keeps answering and no acknowledged webhook is lost."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

from streams.broker import LocalKafka
from streams.routing import ANSWERED_BY_HEADER, partition_for
from streams.settings import Settings
from tests.integration.processes import Worker, start_worker, wait_for
from tests.integration.services import TEST_PARTITIONS, AblyServer
from tests.integration.test_faults import notifications_wrong, projections_match
from tests.integration.webhooks import (
    API_TOKEN,
    Delivery,
    ably_messages,
    deliver,
    query,
    raw_webhook_ids,
    record_figures,
    webhook_env,
)
from tests.traffic import expected, generate, location_notifications


def answered_by(worker: Worker, location: str) -> tuple[int, str, int | None]:
    """A leads query's status, who answered it ("owner", or "standby": a copy, the owner dead)
    and the location's leads total it answered (None without an answer)."""
    request = urllib.request.Request(
        f"{worker.url}/v1/locations/{location}/leads",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            total = json.loads(response.read())["total"]
            return response.status, response.headers.get(ANSWERED_BY_HEADER, "owner"), total
    except urllib.error.HTTPError as exc:
        return exc.code, "error", None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, "nobody", None


async def test_two_workers_three_brokers_survive_a_worker_kill_and_a_broker_stop(
    ably_server: AblyServer, tmp_path: Path
) -> None:
    cluster = LocalKafka(tmp_path / "cluster", libs=Settings.from_env({}).kafka_libs, nodes=3)
    cluster.start()
    workers: list[Worker] = []
    try:
        await cluster.wait_ready()
        # Locations in every partition, so that the killed worker owned some of them.
        run = next(
            run
            for run in (f"c{uuid.uuid4().hex[:6]}" for _ in range(1000))
            if {partition_for(f"{run}{n}", TEST_PARTITIONS) for n in range(8)}
            == set(range(TEST_PARTITIONS))
        )
        bodies = generate(2400, locations=8, prefix=run, seed=3)
        first, second = bodies[:1600], bodies[1600:]
        locations = sorted(expected(bodies))
        env = webhook_env(cluster.bootstrap, ably_server, replication=3)
        workers = [start_worker(env, tmp_path / f"worker-{n}") for n in (1, 2)]
        for worker in workers:
            worker.wait_healthy(timeout=180)
        alive = list(workers)
        # Routing: each worker answers for every location, its own or forwarded to the owner.
        for worker in workers:
            assert wait_for(
                lambda w=worker: all(query(w, loc, "leads")[0] == 200 for loc in locations),
                timeout=120,
            )

        # Worker 2 is killed a third of the way through; HighLevel's retries go to worker 1.
        delivery = Delivery()
        sender = threading.Thread(
            target=deliver, args=(first, lambda: [w.url for w in alive], delivery), daemon=True
        )
        sender.start()
        assert wait_for(lambda: delivery.accepted >= len(first) // 3, timeout=300)
        # Leads only grow, and queries read committed state: what each location had a few
        # seconds before the kill, a standby copy (which follows the changelog within about a
        # second) must answer at least (an emptied or stale copy would not).
        earlier = {loc: query(workers[0], loc, "leads")[1]["total"] for loc in locations}
        time.sleep(3)
        alive.remove(workers[1])
        workers[1].kill()
        # While its partitions move, keep asking the survivor about every location.
        answers: Counter[tuple[int, str]] = Counter()
        copies: list[tuple[str, int | None, int]] = []  # a standby's answers: (location, got, had)

        def every_location_answered() -> bool:
            got = {loc: answered_by(workers[0], loc) for loc in locations}
            answers.update((status, who) for status, who, _ in got.values())
            copies.extend(
                (loc, total, earlier[loc])
                for loc, (status, who, total) in got.items()
                if (status, who) == (200, "standby")
            )
            return all(status == 200 for status, _, _ in got.values()) and not sender.is_alive()

        assert wait_for(every_location_answered, timeout=300, interval=1)
        # Until the group moves the dead worker's partitions, the survivor answers them from its
        # standby copies; anything it cannot answer is a 503 to retry, never a 500.
        assert {status for status, _ in answers} <= {200, 503}, answers
        assert answers[200, "standby"] > 0, answers
        assert [c for c in copies if c[1] is None or c[1] < c[2]] == [], copies
        assert any(had > 0 for _, _, had in copies), (copies, earlier)
        assert delivery.accepted == len(first), delivery
        want_first = expected(first)
        assert wait_for(lambda: not projections_match(workers[0], want_first), timeout=300), (
            projections_match(workers[0], want_first)
        )

        # One broker of three stopped: two in-sync replicas remain, acks=all still succeeds.
        cluster.stop_node(3, kill=True)
        during = deliver(second, lambda: [w.url for w in alive])
        assert during.accepted == len(second)
        assert wait_for(lambda: not projections_match(workers[0], expected(bodies)), timeout=300), (
            projections_match(workers[0], expected(bodies))
        )
        logged = await raw_webhook_ids(cluster.bootstrap)
        acknowledged = {b["webhookId"] for b in bodies}
        lost = acknowledged - set(logged)
        assert not lost, sorted(lost)[:5]
        notifications = location_notifications(bodies)
        assert wait_for(lambda: not notifications_wrong(ably_server, run, bodies), 180), (
            notifications_wrong(ably_server, run, bodies)
        )
        seen = ably_messages(ably_server, run)
        record_figures(
            "two workers, three brokers: kill -9 a worker, then stop a broker",
            faults={"SIGKILL worker": 1, "SIGKILL broker (of 3)": 1},
            webhooks_in=len(bodies),
            retried_answers_worker_kill=dict(delivery.retried),
            retried_answers_broker_down=dict(during.retried),
            query_answers_during_failover={f"{s} {by}": n for (s, by), n in answers.items()},
            raw_records_for_run=sum(n for w, n in logged.items() if w.startswith(run)),
            published_seen_by_subscribers=len(seen),
            expected_location_notifications=sum(notifications.values()),
            lost_webhooks=len(lost),
            lost_notifications=len(notifications_wrong(ably_server, run, bodies)),
            duplicated=len(seen) - len({m["id"] for m in seen}),
        )
    finally:
        for worker in workers:
            worker.stop()
        cluster.stop()
