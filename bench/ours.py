"""Rows 2 and 6b, this project: one `streams worker` (the runtime of `streams.runtime`: every
projection, RocksDB stores, one transaction per round for every partition) consuming the pre-filled
raw topic from offset 0, until its consumer group has committed past the end.

Row 2 times consumption only, with every partition open: the records the worker folds after
/healthz first answers 200 (every partition taken and restored), over the time from then to its
last commit (what it has committed, polled every 20 ms). What it folded before is read from its
`/metrics` (`streams_raw_records_total`) at that moment, not from its commits: a commit covers up
to a round of 10,000 records, so the commits seen then lagged the folding by a varying amount,
and the same 3 s of folding measured 23,000 to 34,000/s. (The worker opens its partitions one
after the other and folds those it has open meanwhile: what it folds before /healthz answers
counts in row 6b only.)
Row 6b times the live worker's whole rebuild, from starting the process with an empty data
directory in a new consumer group to its last commit (row 6, `streams replay`, is
bench.replay.all_at_once). The projections' answers are read back through the query API, and
every table from the worker's changelog, so that the other rows' can be checked against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import commits, worker_env
from streams import queries
from streams.app import APP_ID
from streams.money import minor_units
from streams.runtime.changelog import read_changelog
from streams.tables import contacts, revenue, unread
from tests.integration.processes import Worker, counter, http, start_worker

__all__ = ["Answers", "Run", "answers_from_tables", "answers_of", "run_worker"]

FOLDED = "streams_raw_records_total"  # the live worker's records folded, each once
# Per location: revenue {"date|currency": minor units} and unread {conversation: count}.
Answers = dict[str, dict[str, dict[str, int]]]


@dataclass
class Run:
    rate: float  # records/s while consuming (row 2)
    rebuild_rate: float  # records/s from process start, empty data dir (row 6b)
    answers: Answers
    tables: dict[str, dict[Any, Any]]  # every table, as the worker's changelog holds it


def run_worker(bootstrap: str, records: int, workdir: Path, locations: list[str]) -> Run:
    """One fresh worker over the whole log. The group id is fixed, so each trial needs a fresh
    broker (see bench.__main__)."""
    started = time.perf_counter()
    worker = start_worker(worker_env(bootstrap), workdir)
    try:
        ready, before, done = asyncio.run(consumed(worker, bootstrap, records))
        answers = answers_of(worker.url, locations)
    finally:
        worker.stop()
    tables = asyncio.run(read_changelog(bootstrap, APP_ID))
    # All folded before /healthz answered (a log too small for the row): row 6b's rate stands in.
    rebuild = records / (done - started)
    rate = (records - before) / (done - ready) if before < records else rebuild
    return Run(rate, rebuild, answers, tables)


async def consumed(worker: Worker, bootstrap: str, records: int) -> tuple[float, int, float]:
    """(when /healthz first answered 200, the records folded by then, when `commits` saw all)."""
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while True:
            assert worker.process.poll() is None and time.monotonic() < deadline, worker.tail()
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{worker.url}/healthz") as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.02)
        ready = time.perf_counter()
        async with session.get(f"{worker.url}/metrics") as response:
            folded = counter(await response.text(), FOLDED)
    _, _, done = await commits(bootstrap, APP_ID, records, lambda: worker.process.poll() is None)
    return ready, folded, done


def _answer(revenue_answer: dict[str, Any], unread_answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "revenue": {
            f"{day['date']}|{day['currency']}": minor_units(Decimal(day["amount"]), day["currency"])
            for day in revenue_answer["days"]
        },
        "unread": {c: n for c, n in unread_answer["conversations"].items() if n},
    }


def answers_of(url: str, locations: list[str]) -> Answers:
    """Revenue and unread of each location, through the worker's query API."""
    answers: Answers = {}
    for location in locations:
        quoted = urllib.parse.quote(location, safe="")
        status, revenue_answer = http("GET", f"{url}/v1/locations/{quoted}/revenue")
        assert status == 200, revenue_answer
        status, unread_answer = http("GET", f"{url}/v1/locations/{quoted}/unread")
        assert status == 200, unread_answer
        answers[location] = _answer(revenue_answer, unread_answer)
    return answers


def answers_from_tables(tables: dict[str, dict[Any, Any]], locations: list[str]) -> Answers:
    """The same answers computed from tables (as the query API computes them from its own)."""
    contact = tables[contacts.CONTACTS].get
    return {
        location: _answer(
            queries.revenue_answer(
                location, tables[revenue.DAILY_REVENUE].get(location), None, None
            ),
            queries.unread_answer(
                location, tables[unread.UNREAD_BY_LOCATION].get(location), contact
            ),
        )
        for location in locations
    }
