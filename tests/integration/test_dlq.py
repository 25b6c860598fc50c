"""Dead letters against the real broker: a build with a bug dead-letters an invoice, an operator
lists and shows it, the fix is deployed, `streams dlq retry` re-drives it and it is processed
exactly once; a record that is broken in itself goes back to the dead letters."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from streams.dlq import read_ledger
from tests.integration.processes import REPO, Worker, http, start_worker, wait_for
from tests.integration.services import AblyServer
from tests.integration.test_pipeline import ably_messages, raw_log_size
from tests.integration.webhooks import derived_records, post_webhook, query, webhook_env
from tests.integration.worker_before_fix import BUG

BEFORE_FIX = [sys.executable, "-m", "tests.integration.worker_before_fix"]


def invoice(location: str, webhook_id: str, invoice_id: str, paid: Any, currency: str) -> dict:
    return {
        "_id": invoice_id,
        "status": "paid",
        "amountPaid": paid,
        "currency": currency,
        "altId": location,
        "altType": "location",
        "updatedAt": "2026-03-02T12:00:00Z",
        "webhookId": webhook_id,
    }


def dlq(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(REPO / ".venv/bin/streams"), "dlq", *args],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def listed(env: dict[str, str], run: str) -> list[dict[str, Any]]:
    """This test's dead letters, as `streams dlq list` shows them (the DLQ is shared)."""
    rows = json.loads(dlq(env, "list", "--family", "payments", "--json"))
    return [row for row in rows if (row["webhook_id"] or "").startswith(run)]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    """Await `check()` until it returns something truthy; that value (or the last one)."""
    deadline = time.monotonic() + timeout
    while not (value := await check()) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return value


async def dead_letters_of(kafka: str, run: str) -> list[dict[str, Any]]:
    """Polled in-process: one CLI run per poll would only add start-up time."""
    ledger = await read_ledger(kafka)
    return [
        {**letter.summary(), "state": ledger.state(letter)}
        for letter in ledger.letters
        if letter.header("webhook-id").startswith(run)
    ]


def totals(worker: Worker, location: str) -> dict[str, str]:
    status, answer = query(worker, location, "revenue")
    return answer["totals"] if status == 200 else {}


async def test_dead_letters_listed_shown_fixed_retried_once_and_failing_again(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    env = webhook_env(kafka_bootstrap, ably_server) | {"STREAMS_DATA_DIR": str(tmp_path / "cli")}
    run = uuid.uuid4().hex[:8]
    location = f"D{run}"
    dinars = invoice(location, f"{run}-dinars", "inv-kwd", 12.345, "KWD")
    broken = invoice(location, f"{run}-broken", "inv-bad", "lots", "USD")
    dollars = invoice(location, f"{run}-dollars", "inv-usd", 10, "USD")

    worker = start_worker(env, tmp_path / "worker", program=BEFORE_FIX)
    try:
        worker.wait_healthy()
        for payload in (dinars, broken, dollars):
            assert post_webhook(worker, payload)[0] == 200
        # The partition moved on past both dead letters.
        assert wait_for(lambda: totals(worker, location) == {"USD": "10.00"}), totals(
            worker, location
        )

        async def two() -> bool:
            return len(await dead_letters_of(kafka_bootstrap, run)) == 2

        assert await eventually(two), await dead_letters_of(kafka_bootstrap, run)
        letters = listed(env, run)
        assert len(letters) == 2, letters
        by_id = {row["webhook_id"]: row for row in letters}
        assert BUG in by_id[f"{run}-dinars"]["error"]
        assert "amountPaid" in by_id[f"{run}-broken"]["error"]
        assert {row["state"] for row in letters} == {"pending"}
        assert (
            'streams_dead_letters_total{family="payments"}'
            in http("GET", f"{worker.url}/metrics")[1]
        )
    finally:
        worker.stop()

    shown = dlq(env, "show", by_id[f"{run}-broken"]["dlq"])
    assert "family: payments" in shown and '"amountPaid": "lots"' in shown
    assert f"webhook-id: {run}-broken" in shown and "(pending)" in shown

    # The fix is deployed: the real worker, same consumer group and state.
    worker = start_worker(env, tmp_path / "worker")
    try:
        worker.wait_healthy()
        chosen = [by_id[f"{run}-dinars"]["dlq"], by_id[f"{run}-broken"]["dlq"]]
        dry = dlq(env, "retry", "--dry-run", *chosen)
        assert dry.count("would be re-driven") == 2
        assert "2 re-driven" in dlq(env, "retry", *chosen)

        assert wait_for(lambda: totals(worker, location) == {"USD": "10.00", "KWD": "12.345"}), (
            totals(worker, location)
        )

        async def failed_again() -> list[dict[str, Any]]:
            return [
                row
                for row in await dead_letters_of(kafka_bootstrap, run)
                if row["redriven_from"] == f"ghl.webhooks.dlq.v1:{chosen[1]}"
            ]

        [again] = await eventually(failed_again)
        assert again["webhook_id"] == f"{run}-broken" and again["state"] == "pending"
        states = {row["dlq"]: row["state"] for row in listed(env, run)}
        assert states[chosen[0]].startswith("re-driven to ghl.webhooks.v1:")
        assert states[chosen[1]].startswith("re-driven to ghl.webhooks.v1:")

        # Not twice by accident: nothing is appended.
        before = await raw_log_size(kafka_bootstrap)
        assert "0 re-driven, 2 already re-driven before" in dlq(env, "retry", *chosen)
        assert await raw_log_size(kafka_bootstrap) == before

        # Twice on purpose: the projection stays exact. A later invoice on the same partition
        # shows that the second copy has been folded.
        assert "1 re-driven" in dlq(env, "retry", "--again", chosen[0])
        later = invoice(location, f"{run}-later", "inv-later", 1, "USD")
        assert post_webhook(worker, later)[0] == 200
        assert wait_for(lambda: totals(worker, location) == {"USD": "11.00", "KWD": "12.345"}), (
            totals(worker, location)
        )

        # The app was told of the dinars once, despite the second copy.
        def payments_told() -> list[str]:
            return sorted(
                m["id"]
                for m in ably_messages(ably_server)
                if m["channel"] == f"location:{location}" and m["name"] == "payment-received"
            )

        assert wait_for(lambda: len(payments_told()) == 3), payments_told()
        # Once where a repeat would show: the stand-in, as Ably, drops a repeated id.
        derived = [
            e
            for e in await derived_records(kafka_bootstrap, location)
            if e["channel"] == f"location:{location}" and e["name"] == "payment-received"
        ]
        assert sorted(e["id"] for e in derived) == payments_told(), derived
    finally:
        worker.stop()


async def test_a_webhook_at_the_size_limit_is_taken_and_dead_lettered_whole(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    # A body of STREAMS_WEBHOOK_MAX_BYTES (1 MiB by default) is over Kafka's default record
    # limit once it has headers: the raw log and the dead letters take 2 MiB, so it is written,
    # dead-lettered with its body, and its partition goes on.
    env = webhook_env(kafka_bootstrap, ably_server)
    run = uuid.uuid4().hex[:8]
    location = f"S{run}"
    huge = invoice(location, f"{run}-huge", "inv-huge", "lots", "USD")
    huge["padding"] = ""
    huge["padding"] = "x" * (1024 * 1024 - len(json.dumps(huge)))
    assert len(json.dumps(huge)) == 1024 * 1024
    after = invoice(location, f"{run}-after", "inv-after", 7, "USD")

    worker = start_worker(env, tmp_path / "worker")
    try:
        worker.wait_healthy()
        assert post_webhook(worker, huge)[0] == 200
        assert post_webhook(worker, after)[0] == 200
        assert wait_for(lambda: totals(worker, location) == {"USD": "7.00"}), totals(
            worker, location
        )

        async def letters() -> list[dict[str, Any]]:
            return await dead_letters_of(kafka_bootstrap, run)

        [letter] = await eventually(letters)
        assert letter["webhook_id"] == f"{run}-huge" and "amountPaid" in letter["error"]
    finally:
        worker.stop()
    shown = dlq(
        webhook_env(kafka_bootstrap, ably_server) | {"STREAMS_DATA_DIR": str(tmp_path / "cli")},
        "show",
        letter["dlq"],
    )
    assert '"amountPaid": "lots"' in shown and "x" * 1000 in shown  # the whole body is there
