"""Rows 1, 2, 2b, 3, 3b and 6b in one run: per trial a fresh broker, the same pre-filled raw
topic, then the ceiling, the worker's families over plain dicts, this project's worker and the
two Quix Streams peers over it. Checked in every trial: revenue and unread of every location,
key for key, against tests/traffic.py's independent reference (worker, families, both peers);
and every table, key for key, between the worker's changelog, the families over dicts and the
peer that runs every projection."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import families, peer_quix
from bench.ceiling import ceiling
from bench.common import Spread, bodies, broker, fill, normalise
from bench.ours import Answers, answers_from_tables, run_worker
from streams import event_loop
from tests.traffic import expected

__all__ = ["Throughput", "measure"]


def _spread() -> Spread:
    return Spread([])


@dataclass
class Throughput:
    records: int
    ceiling: Spread = field(default_factory=_spread)  # row 1
    ours: Spread = field(default_factory=_spread)  # row 2
    families: Spread = field(default_factory=_spread)  # row 2b
    peer_all: Spread = field(default_factory=_spread)  # row 3, every projection
    peer: Spread = field(default_factory=_spread)  # row 3b, revenue + unread
    rebuild: Spread = field(default_factory=_spread)  # row 6b
    checked: str = ""


def measure(records: int, trials: int) -> Throughput:
    items = bodies(records)
    reference = _reference(items)
    locations = sorted(reference)
    result = Throughput(records)
    for trial in range(trials):
        with broker() as kafka, tempfile.TemporaryDirectory(prefix="streams-bench-w-") as tmp:
            asyncio.run(fill(kafka.bootstrap, items))
            # On the worker's event loop: the ceiling differs from it by the work only.
            result.ceiling.values.append(event_loop.run(ceiling(kafka.bootstrap, records)))
            raw = asyncio.run(families.raw_records(kafka.bootstrap, records))
            folded_rate, folded = families.measure(raw)
            del raw
            result.families.values.append(folded_rate)
            run = run_worker(kafka.bootstrap, records, Path(tmp), locations)
            result.ours.values.append(run.rate)
            result.rebuild.values.append(run.rebuild_rate)
            all_rate, all_answers, all_tables = peer_quix.measure(
                kafka.bootstrap, records, peer_quix.ALL
            )
            result.peer_all.values.append(all_rate)
            peer_rate, peer_answers, _ = peer_quix.measure(
                kafka.bootstrap, records, peer_quix.REVENUE_UNREAD
            )
            result.peer.values.append(peer_rate)
        _check("worker", run.answers, reference)
        _check("families over dicts", answers_from_tables(folded, locations), reference)
        _check("Quix Streams (every projection)", all_answers, reference)
        _check("Quix Streams (revenue + unread)", peer_answers, reference)
        worker_tables = normalise(run.tables)
        _check_tables("families over dicts", normalise(folded), worker_tables)
        _check_tables("Quix Streams (every projection)", all_tables, worker_tables)
        print(
            f"trial {trial + 1}: ceiling {result.ceiling.values[-1]:,.0f}/s, "
            f"families over dicts {folded_rate:,.0f}/s, ours {run.rate:,.0f}/s, "
            f"rebuild {run.rebuild_rate:,.0f}/s, Quix every projection {all_rate:,.0f}/s, "
            f"Quix revenue + unread {peer_rate:,.0f}/s",
            flush=True,
        )
        rows = sum(len(t) for t in worker_tables.values())
    result.checked = (
        f"revenue and unread of all {len(locations)} locations: worker == families over dicts "
        f"== both Quix Streams peers == reference; every table ({len(worker_tables)} tables, "
        f"{rows:,} rows): worker's changelog == families over dicts == Quix Streams (every "
        f"projection); key for key, in every trial"
    )
    return result


def _reference(items: list[dict[str, object]]) -> Answers:
    """tests/traffic.py's independent reference, in the answers' shape."""
    answers: Answers = {}
    for location, values in expected(items).items():
        answers[location] = {
            "revenue": {f"{d}|{c}": m for (d, c), m in values["revenue"].items() if m},
            "unread": {k: n for k, n in values["unread"].items() if n},
        }
    return answers


def _check(who: str, answers: Answers, reference: Answers) -> None:
    empty: dict[str, dict[str, int]] = {"revenue": {}, "unread": {}}
    for location in sorted(set(answers) | set(reference)):
        got, want = answers.get(location, empty), reference.get(location, empty)
        for kind in ("revenue", "unread"):
            if got.get(kind, {}) != want.get(kind, {}):
                raise AssertionError(
                    f"{who}: {kind} of {location} differs from the reference:\n"
                    f"  got  {got.get(kind)}\n  want {want.get(kind)}"
                )


def _check_tables(
    who: str, tables: dict[str, dict[str, Any]], worker: dict[str, dict[str, Any]]
) -> None:
    for name in sorted(set(tables) | set(worker)):
        got, want = tables.get(name, {}), worker.get(name, {})
        for key in sorted(set(got) | set(want)):
            if got.get(key) != want.get(key):
                raise AssertionError(
                    f"{who}: table {name}, key {key} differs from the worker's changelog:\n"
                    f"  got  {got.get(key)}\n  want {want.get(key)}"
                )
