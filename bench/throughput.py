"""Rows 1, 2, 3 and 6b in one run: per trial a fresh broker, the same pre-filled raw topic, then
the ceiling, this project's worker and the Quix Streams peer over it; answers checked key for key
(worker == peer == tests/traffic.py's independent reference)."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import peer_quix
from bench.ceiling import ceiling
from bench.common import Spread, bodies, broker, fill
from bench.ours import Answers, run_worker
from tests.traffic import expected

__all__ = ["Throughput", "measure"]


@dataclass
class Throughput:
    records: int
    ceiling: Spread = field(default_factory=lambda: Spread([]))
    ours: Spread = field(default_factory=lambda: Spread([]))
    rebuild: Spread = field(default_factory=lambda: Spread([]))  # row 6b
    peer: Spread = field(default_factory=lambda: Spread([]))
    checked: str = ""


def measure(records: int, trials: int) -> Throughput:
    items = bodies(records)
    reference = _reference(items)
    locations = sorted(reference)
    result = Throughput(records)
    for trial in range(trials):
        with broker() as kafka, tempfile.TemporaryDirectory(prefix="streams-bench-w-") as tmp:
            asyncio.run(fill(kafka.bootstrap, items))
            result.ceiling.values.append(asyncio.run(ceiling(kafka.bootstrap, records)))
            run = run_worker(kafka.bootstrap, records, Path(tmp), locations)
            result.ours.values.append(run.rate)
            result.rebuild.values.append(run.rebuild_rate)
            peer_rate, peer_answers = peer_quix.measure(kafka.bootstrap, records)
            result.peer.values.append(peer_rate)
        _check("worker", run.answers, reference)
        _check("Quix Streams", peer_answers, reference)
        print(
            f"trial {trial + 1}: ceiling {result.ceiling.values[-1]:,.0f}/s, "
            f"ours {run.rate:,.0f}/s, rebuild {run.rebuild_rate:,.0f}/s, peer {peer_rate:,.0f}/s",
            flush=True,
        )
    result.checked = (
        f"revenue and unread of all {len(locations)} locations: worker == Quix Streams == "
        f"reference, key for key, in every trial"
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
