"""Rows 3 and 3b, the peer: Quix Streams over the same raw topic, with its own RocksDB state
store (state scoped per message key, i.e. per location, with its own changelog topics).

Both run this project's pure code inside the Quix Streams application, so the rows compare the
runtimes, not two implementations of the rules:
- row 3 (`all`): the same work as the worker, every projection: the live worker's families
  (bench.families, the same handlers as row 2b) over a `Tables` mapping on Quix's per-key state,
  each of our table keys stored as the state key `{table}\\x00{JSON key}`. Every row our folds
  touch while handling a location's record belongs to that location, the message key, so the
  per-key scope is the same partitioning as the worker's. Every table it writes is returned too,
  so bench.throughput checks it key for key against the worker's changelog;
- row 3b (`revenue-unread`): only revenue and unread, with the pure folds of streams.tables.revenue
  and .unread on ad-hoc state keys (the peer row of earlier runs).

Answers are checked key for key against the worker's and the reference (bench.throughput). It runs
in its own process (`python -m bench.peer_quix BOOTSTRAP RECORDS OUT.json all|revenue-unread`)
because `Application.run()` owns its process's signals; the rate is taken from the first record
folded to the last.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, NamedTuple

from bench import families
from bench.common import normalise
from bench.ours import Answers, answers_from_tables
from streams.codec import dumps
from streams.events import BadRecord, Event
from streams.settings import REPO_ROOT
from streams.tables import locations, revenue, unread
from streams.tables.registry import LIVE_TABLES
from streams.topics import RAW_WEBHOOKS

__all__ = ["ALL", "REVENUE_UNREAD", "measure"]

ALL, REVENUE_UNREAD = "all", "revenue-unread"


def measure(
    bootstrap: str, records: int, work: str
) -> tuple[float, Answers, dict[str, dict[str, Any]]]:
    """(records/s, answers per location, every table normalised ({} for `revenue-unread`)) of
    one Quix Streams run from offset 0."""
    with tempfile.TemporaryDirectory(prefix="streams-bench-quix-") as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, "-m", "bench.peer_quix", bootstrap, str(records), str(out), work],
            cwd=REPO_ROOT,
            check=True,
            timeout=900,
        )
        result = json.loads(out.read_text())
    return result["rate"], result["answers"], result["tables"]


class _Raw(NamedTuple):
    """A raw record as `families.fold_record` reads it."""

    value: bytes
    headers: Any
    partition: int
    offset: int


class _Table(MutableMapping[Any, Any]):
    """One of our tables on the Quix state of the message being processed (`scope.state`).
    `rows` records what is written, for the check against the worker's tables."""

    def __init__(self, scope: _Scope, name: str) -> None:
        self.scope, self.prefix = scope, name + "\x00"
        self.rows: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        value = self.scope.state.get(self.prefix + dumps(key).decode())
        return default if value is None else value

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        if value is None:
            self.pop(key)
            return
        self.scope.state.set(self.prefix + dumps(key).decode(), value)
        self.rows[key] = value

    def __delitem__(self, key: Any) -> None:
        self[key]  # KeyError when absent
        self.pop(key)

    def pop(self, key: Any, default: Any = None) -> Any:
        value = self.get(key)
        if value is None:
            return default
        self.scope.state.delete(self.prefix + dumps(key).decode())
        self.rows.pop(key, None)
        return value

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError("Quix Streams' state cannot list its keys")

    def __len__(self) -> int:
        raise NotImplementedError("Quix Streams' state cannot list its keys")


class _Scope:
    state: Any = None


def _run(bootstrap: str, records: int, out: Path, work: str) -> None:
    from quixstreams import Application, message_context
    from quixstreams.state import State

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"bench-quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=str(out.parent / "state"),
        loglevel="WARNING",
    )
    topic = app.topic(RAW_WEBHOOKS.name, key_deserializer="bytes", value_deserializer="bytes")
    answers: dict[str, dict[str, dict[str, int]]] = {}
    clock = {"seen": 0, "first": 0.0, "last": 0.0}
    scope = _Scope()
    tables = {name: _Table(scope, name) for name in LIVE_TABLES}
    handlers = families.owners(tables)

    def fold(value: bytes, key: bytes, timestamp: int, headers: Any, state: State) -> None:
        if clock["seen"] == 0:
            clock["first"] = time.perf_counter()
        if work == ALL:
            scope.state = state
            context = message_context()
            families.fold_record(
                handlers, _Raw(value, headers or [], context.partition, context.offset)
            )
        else:
            # The worker dead-letters bad records; the bench traffic has none.
            with contextlib.suppress(BadRecord):
                _fold(Event.from_record(value, headers or []), state, answers)
        clock["seen"] += 1
        if clock["seen"] >= records:
            clock["last"] = time.perf_counter()
            app.stop()

    app.dataframe(topic).update(fold, stateful=True, metadata=True)
    app.run()
    rate = records / (clock["last"] - clock["first"])
    written: dict[str, dict[Any, Any]] = {name: t.rows for name, t in tables.items()}
    if work == ALL:
        located = set(written[revenue.DAILY_REVENUE]) | set(written[unread.UNREAD_BY_LOCATION])
        answers = answers_from_tables(written, sorted(located))
    result = {
        "rate": rate,
        "answers": answers,
        "tables": normalise(written) if work == ALL else {},
    }
    out.write_text(json.dumps(result))


def _fold(event: Event, state: Any, answers: dict[str, dict[str, dict[str, int]]]) -> None:
    if event.type == locations.SETTINGS_TYPE:
        location_id, timezone = locations.timezone_from(event)
        state.set("revenue", revenue.apply_timezone(state.get("revenue"), timezone))
    elif event.type in revenue.PAYMENT_TYPES:
        payment = revenue.payment_from(event)
        key = "invoice:" + revenue.invoice_key(payment)
        location, progress, recognised = revenue.apply_payment(
            state.get("revenue"), state.get(key), payment
        )
        if recognised is not None:
            state.set("revenue", location)
            state.set(key, progress)
            answers.setdefault(payment.location_id, {"revenue": {}, "unread": {}})["revenue"] = {
                f"{day}|{currency}": minor
                for day, totals in location["days"].items()
                for currency, minor in totals.items()
            }
    elif event.type in (unread.INBOUND_TYPE, unread.UNREAD_UPDATE_TYPE):
        if event.type == unread.INBOUND_TYPE:
            message = unread.inbound_from(event)
            seen_key = "seen:" + message.seen_key
            seen = state.get(seen_key) is not None
            conversation_id, location_id = message.conversation_id, message.location_id
            conversation, changed = unread.apply_inbound(
                state.get("conversation:" + conversation_id), seen, message
            )
            if not seen:
                state.set(seen_key, True)
        else:
            update = unread.unread_update_from(event)
            conversation_id, location_id = update.conversation_id, update.location_id
            conversation, changed = unread.apply_unread_update(
                state.get("conversation:" + conversation_id), update
            )
        if changed:
            state.set("conversation:" + conversation_id, conversation)
            counts = answers.setdefault(location_id, {"revenue": {}, "unread": {}})["unread"]
            if conversation["unread"]:
                counts[conversation_id] = conversation["unread"]
            else:
                counts.pop(conversation_id, None)


if __name__ == "__main__":
    _run(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
