"""The one processing path: decode each raw record once, hand it to the families that own its
type, and classify failures. The live worker and every replay version run it; a replay runs the
projection's folds as its families and emits nothing.

Failures, per record:
- a record a family cannot use (its folds raise `BadRecord`, with the reason) goes to the
  dead-letter topic with the reason and its source coordinates, in the batch's transaction, and
  the partition moves on; the family's writes for it are rolled back;
- anything else (a bug in a fold: KeyError, TypeError...) propagates: the runtime stops the
  worker without committing the batch, so it is processed again once the bug is fixed, instead
  of dead-lettering a family's traffic meanwhile.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from streams import metrics
from streams.codec import loads_object
from streams.dlq import REDRIVE_FAMILY
from streams.events import BadRecord, Event, event_type
from streams.runtime.state import PartitionState
from streams.runtime.transaction import Effects
from streams.tables.projection import Fold, Tables
from streams.topics import RAW_WEBHOOKS, RECORD_MAX_BYTES

__all__ = [
    "CONTENT_ERRORS",
    "Family",
    "Handler",
    "Processor",
    "headers_and_type",
    "projection_families",
]

log = logging.getLogger(__name__)

REASON_MAX_CHARS = 1000  # a dead letter's reason header: enough to act on, never the body again

Handler = Callable[[Event], list[dict[str, Any]]]
# What a record's content causes: the folds check what they read and say why (`BadRecord`).
# Anything else (KeyError, TypeError...) is a bug in a fold or a fault of the machine: the worker
# stops without committing rather than dead-letter a family's traffic until someone notices.
CONTENT_ERRORS = (BadRecord,)

Family = tuple[str, Iterable[str], Callable[[Tables], Handler]]  # name, its types, its handler


def projection_families(folds: Sequence[Fold]) -> list[Family]:
    """A projection's folds as families that emit nothing (what a replay version runs)."""

    def family(fold: Fold) -> Family:
        def make(tables: Tables) -> Handler:
            def handle(event: Event) -> list[dict[str, Any]]:
                fold.update(tables, event)
                return []

            return handle

        return fold.family, fold.types, make

    return [family(fold) for fold in folds]


class Processor:
    """The families of one partition, bound to its tables. `live`: whether it emits derived
    events and dead letters (the live worker) or only folds (a replay version, `label`)."""

    def __init__(
        self, families: Iterable[Family], state: PartitionState, *, live: bool, label: str
    ) -> None:
        self.state, self.live, self.label = state, live, label
        self.owners: dict[str, list[tuple[str, Handler]]] = {}
        for name, types, make_handler in families:
            handle = make_handler(state.tables)
            for kind in types:
                self.owners.setdefault(kind, []).append((name, handle))

    def process(self, records: Sequence[Any], effects: Effects) -> None:
        """Fold `records` (of this partition, in order) into the state; collect their effects."""
        folded: Counter[str] = Counter()
        unknown: Counter[str] = Counter()
        derived_before = len(effects.derived)
        apply, live = self.state.apply, self.live
        for record in records:
            headers, kind = headers_and_type(record)
            owned = self.owners.get(kind)
            if owned:
                # A dead letter re-driven by `streams dlq retry` is meant for the family that
                # failed it; the others processed the original already.
                retried_by = headers.get(REDRIVE_FAMILY)
                if retried_by is not None:
                    owned = [(n, h) for n, h in owned if n.encode() == retried_by]
                try:  # decoded once, for every family that owns the type
                    event = Event.from_record(
                        record.value, headers, record.partition, record.offset
                    )
                except CONTENT_ERRORS as exc:
                    for name, _ in owned:
                        self._dead_letter(record, headers, name, str(exc), effects)
                    continue
                for name, handle in owned:
                    try:  # the family's writes for this record are undone when it raises
                        emitted = apply(handle, event)
                    except CONTENT_ERRORS as exc:
                        self._dead_letter(record, headers, name, str(exc), effects)
                        continue
                    folded[name] += 1
                    if emitted and live and event.live:
                        effects.derive(emitted, event.received_at or None)
            elif not kind:
                self._dead_letter(
                    record,
                    headers,
                    "unknown",
                    "no event-type header and the body is not a JSON object",
                    effects,
                )
            else:
                unknown[kind] += 1
        if self.live:
            metrics.count("streams_raw_records_total", len(records))
        for name, n in folded.items():
            if self.live:
                metrics.count("streams_records_total", n, family=name)
            else:
                metrics.count("streams_replay_records_total", n, projection=self.label)
        for kind, n in unknown.items():
            metrics.count("streams_unknown_types_total", n, type=kind)
        # Counted once a batch, by event name (a count per record cost more than the counting).
        derived = Counter(item["name"] for item in effects.derived[derived_before:])
        for event_name, n in derived.items():
            metrics.count("streams_derived_events_total", n, name=event_name)

    def _dead_letter(
        self, record: Any, headers: dict[str, bytes], family: str, reason: str, effects: Effects
    ) -> None:
        if not self.live:
            log.warning(
                "%s: record %s:%s skipped: %s", self.label, record.partition, record.offset, reason
            )
            metrics.count("streams_replay_bad_records_total", projection=self.label)
            return
        log.warning("%s: dead-lettering %s:%s: %s", family, record.partition, record.offset, reason)
        if len(reason) > REASON_MAX_CHARS:
            reason = reason[:REASON_MAX_CHARS] + "..."
        body = record.value or b""
        dead_headers = [
            *headers.items(),
            ("error", reason.encode()),
            ("family", family.encode()),
            ("source-topic", RAW_WEBHOOKS.name.encode()),
            ("source-partition", str(record.partition).encode()),
            ("source-offset", str(record.offset).encode()),
        ]
        if len(body) + sum(len(k) + len(v) for k, v in dead_headers) > RECORD_MAX_BYTES - 4096:
            # Kafka would refuse it, and the batch with it, on every retry; the source position
            # in the headers leads to the body in the raw log.
            dead_headers.append(("body-omitted", f"{len(body)} bytes".encode()))
            body = b""
        effects.dead_letters.append((record.key, body, dead_headers))
        metrics.count("streams_dead_letters_total", family=family)


def headers_and_type(record: Any) -> tuple[dict[str, bytes], str]:
    """A raw record's headers and event type: from its header, or (for a record written without
    headers, not by our ingress) from its body; "" when neither says."""
    headers = dict(record.headers or [])
    kind = headers.get("event-type", b"").decode(errors="replace")
    if not kind:
        try:
            kind = event_type(loads_object(record.value or b""))
        except ValueError:
            kind = ""
    return headers, kind
