"""Row 3, the peer: Quix Streams computing the same revenue and unread projections from the same
raw topic, with its own RocksDB state store (state scoped per message key, i.e. per location,
with its own changelog topics).

It folds with this project's pure functions (streams.tables.revenue and .unread), so the row
compares the frameworks, not two implementations of the rules; its answers are then checked key
for key against the worker's (bench.__main__). It runs in its own process
(`python -m bench.peer_quix BOOTSTRAP RECORDS OUT.json`) because `Application.run()` owns its
process's signals; the rate is taken from the first record folded to the last.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.ours import Answers
from streams.events import BadRecord, Event
from streams.settings import REPO_ROOT
from streams.tables import locations, revenue, unread
from streams.topics import RAW_WEBHOOKS

__all__ = ["measure"]


def measure(bootstrap: str, records: int) -> tuple[float, Answers]:
    """(records/s, answers per location) of one Quix Streams run from offset 0."""
    with tempfile.TemporaryDirectory(prefix="streams-bench-quix-") as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, "-m", "bench.peer_quix", bootstrap, str(records), str(out)],
            cwd=REPO_ROOT,
            check=True,
            timeout=900,
        )
        result = json.loads(out.read_text())
    return result["rate"], result["answers"]


def _run(bootstrap: str, records: int, out: Path) -> None:
    from quixstreams import Application
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

    def fold(value: bytes, key: bytes, timestamp: int, headers: Any, state: State) -> None:
        if clock["seen"] == 0:
            clock["first"] = time.perf_counter()
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
    out.write_text(json.dumps({"rate": rate, "answers": answers}))


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
    _run(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
