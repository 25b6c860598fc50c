"""Rows 2 and 6b, this project: a `streams worker` (one Faust worker, RocksDB tables, every
projection) consuming the pre-filled raw topic from offset 0, until its consumer group has
committed past the end.

Row 2 times consumption only (from /healthz answering to the last commit); row 6b times the
live worker's whole rebuild from starting the process with an empty data directory in a new
consumer group (row 6, `streams replay`, is bench.replay.all_at_once). The projections' answers are read back through the query API so the peer's can be checked
against them.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from bench.common import worker_env
from streams.app import APP_ID
from streams.money import minor_units
from streams.topics import RAW_WEBHOOKS
from tests.integration.processes import http, start_worker

__all__ = ["Answers", "Run", "answers_of", "run_worker"]

# Per location: revenue {"date|currency": minor units} and unread {conversation: count}.
Answers = dict[str, dict[str, dict[str, int]]]


@dataclass
class Run:
    rate: float  # records/s while consuming (row 2)
    rebuild_rate: float  # records/s from process start, empty data dir (row 6b)
    answers: Answers


async def _committed(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(APP_ID)
    finally:
        await admin.close()
    return sum(
        m.offset for tp, m in offsets.items() if tp.topic == RAW_WEBHOOKS.name and m.offset > 0
    )


def run_worker(bootstrap: str, records: int, workdir: Path, locations: list[str]) -> Run:
    """One fresh worker over the whole log. The group id is fixed, so each trial needs a fresh
    broker (see bench.__main__)."""
    started = time.perf_counter()
    worker = start_worker(worker_env(bootstrap), workdir)
    try:
        worker.wait_healthy()
        ready = time.perf_counter()
        while asyncio.run(_committed(bootstrap)) < records:
            time.sleep(0.1)
        done = time.perf_counter()
        return Run(
            records / (done - ready), records / (done - started), answers_of(worker.url, locations)
        )
    finally:
        worker.stop()


def answers_of(url: str, locations: list[str]) -> Answers:
    answers: Answers = {}
    for location in locations:
        quoted = urllib.parse.quote(location, safe="")
        status, revenue = http("GET", f"{url}/v1/locations/{quoted}/revenue")
        assert status == 200, revenue
        status, unread = http("GET", f"{url}/v1/locations/{quoted}/unread")
        assert status == 200, unread
        answers[location] = {
            "revenue": {
                f"{day['date']}|{day['currency']}": minor_units(
                    Decimal(day["amount"]), day["currency"]
                )
                for day in revenue["days"]
            },
            "unread": {c: n for c, n in unread["conversations"].items() if n},
        }
    return answers
