"""A raw record as the projections see it: its decoded body plus the metadata from its headers.

The raw record on `ghl.webhooks.v1` is the exact body bytes; `webhook-id`, `event-type`,
`received-at` (epoch ms), `source` (live/import/backfill) and `signature` travel in headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.codec import loads_object
from streams.errors import StreamsError

__all__ = [
    "SOURCES",
    "BadRecord",
    "Event",
    "event_time",
    "event_type",
    "iso_z",
    "local_date",
    "occurred_at",
    "parse_time",
    "received_at_header",
    "record_headers",
    "utc_millis",
    "webhook_id",
    "within_calendar",
    "zone",
]

T = TypeVar("T")
SOURCES = ("live", "import", "backfill")

# Invoice examples carry no `type`; their `status` says which invoice event it is.
_INVOICE_TYPES = {
    "paid": "InvoicePaid",
    "partially_paid": "InvoicePartiallyPaid",
    "void": "InvoiceVoid",
    "sent": "InvoiceSent",
    "draft": "InvoiceUpdate",
    "delete": "InvoiceDelete",
}


class BadRecord(StreamsError, ValueError):
    """A record no projection can use; the message is the reason that goes to the dead letters."""


@dataclass(slots=True)  # not frozen: a frozen one takes 2.8x as long to make (one per record)
class Event:
    """Read-only by convention: the folds read it, and only the memos below are ever set."""

    type: str
    body: dict[str, Any]
    webhook_id: str
    received_at: int
    source: str
    partition: int = 0
    offset: int = 0
    # Read by most families for each record: worked out once (the body is never changed).
    location_id: str | None = field(init=False, compare=False)
    _time: datetime | None = field(default=None, init=False, repr=False, compare=False)
    _occurred_at: str | None = field(default=None, init=False, repr=False, compare=False)
    _read: dict[Callable[[Event], Any], Any] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        value = self.body.get("locationId")
        if not value and self.body.get("altType") == "location":
            value = self.body.get("altId")
        self.location_id = value if isinstance(value, str) and value else None

    @property
    def live(self) -> bool:
        return self.source == "live"

    def once(self, read: Callable[[Event], T]) -> T:
        """`read(self)`, worked out once for this event: a pure reading of the body that
        several families make (an error is raised again on each call, not kept)."""
        known = self._read
        if known is None:
            known = {}
            self._read = known
        if read in known:
            return cast(T, known[read])
        value = known[read] = read(self)
        return value

    @classmethod
    def from_record(
        cls,
        value: bytes,
        headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
        partition: int = 0,
        offset: int = 0,
    ) -> Event:
        meta = headers if isinstance(headers, dict) else dict(headers)  # the Processor's is one
        try:
            body = loads_object(value)
        except ValueError as exc:
            raise BadRecord(str(exc)) from None
        try:
            received_at = int(meta.get("received-at", b"0"))
            kind = meta.get("event-type", b"").decode()
            webhook = meta.get("webhook-id", b"").decode()
            source = meta.get("source", b"live").decode()
        except ValueError:  # not an integer, not UTF-8: not written by our ingress
            raise BadRecord(
                "headers received-at, event-type, webhook-id or source unreadable"
            ) from None
        if not 0 <= received_at < _LAST_YEAR_MS:
            raise BadRecord(f"header received-at {received_at} is not a time in ms")
        return cls(
            type=kind or event_type(body),
            body=body,
            webhook_id=webhook or webhook_id(body, value),
            received_at=received_at,
            source=source,
            partition=partition,
            offset=offset,
        )


def event_type(body: Mapping[str, Any]) -> str:
    value = body.get("type")
    if isinstance(value, str) and value:
        return value
    status = body.get("status")
    if "_id" in body and "amountPaid" in body and isinstance(status, str):
        return _INVOICE_TYPES.get(status, "InvoiceUpdate")
    return "Unknown"


def webhook_id(body: Mapping[str, Any], raw: bytes) -> str:
    """HighLevel's `webhookId`, else a digest of the exact bytes (a retry of the same body)."""
    value = body.get("webhookId")
    if isinstance(value, str) and value:
        return value
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def record_headers(
    body: Mapping[str, Any],
    raw: bytes,
    *,
    source: str,
    signature: str,
    received_at: int,
    kind: str | None = None,
    webhook: str | None = None,
) -> list[tuple[str, bytes]]:
    """The raw record's headers; `kind` and `webhook` override what the body says (backfill
    knows both from the legacy store)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    return [
        ("webhook-id", (webhook or webhook_id(body, raw)).encode()),
        ("event-type", (kind or event_type(body)).encode()),
        ("received-at", str(received_at).encode()),
        ("source", source.encode()),
        ("signature", signature.encode()),
    ]


_LAST_YEAR_MS = int(datetime(MAXYEAR, 1, 1, tzinfo=UTC).timestamp() * 1000)


def iso_z(moment: datetime) -> str:
    """ISO-8601 as `datetime` writes it, `Z` for UTC: how times are stated in answers and events.
    (A UTC time, nearly every one, by % formatting: half isoformat's cost, one per webhook.)"""
    if moment.tzinfo is not UTC:
        return moment.isoformat().replace("+00:00", "Z")
    m = moment
    stamp = _SECONDS % (m.year, m.month, m.day, m.hour, m.minute, m.second)
    return f"{stamp}.{m.microsecond:06d}Z" if m.microsecond else stamp + "Z"


_SECONDS = "%04d-%02d-%02dT%02d:%02d:%02d"  # what isoformat writes up to the seconds


def utc_millis(moment: datetime) -> str:
    """UTC, ISO-8601 to the millisecond, `Z`: one length, so such times sort as text. (What
    `isoformat(timespec="milliseconds")` writes, at half its cost: one per activity entry.)"""
    m = moment.astimezone(UTC)
    return _UTC_MILLIS % (m.year, m.month, m.day, m.hour, m.minute, m.second, m.microsecond // 1000)


_UTC_MILLIS = _SECONDS + ".%03dZ"


def received_at_header(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """A record's `received-at` header (ms), when it has a readable one."""
    for key, value in headers or ():
        if key == "received-at":
            return int(value) if value.isdigit() else None
    return None


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp (UTC when it has no offset) as an aware datetime, else None.

    A time in the first or last year of the calendar reads as None too: its UTC or local date
    may lie outside what a datetime can hold (OverflowError in every projection that asks)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if not within_calendar(parsed):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def within_calendar(moment: datetime) -> bool:
    """Whether `moment`'s UTC and local dates exist in every zone: it is not in the calendar's
    first or last year (there, `astimezone` may raise OverflowError)."""
    return MINYEAR < moment.year < MAXYEAR


def event_time(event: Event) -> datetime:
    """`timestamp`, else `updatedAt`, else `dateAdded`, else the `received-at` header."""
    moment = event._time  # several families ask for it: parsed once per event
    if moment is None:
        moment = _event_time(event)
        event._time = moment
    return moment


def occurred_at(event: Event) -> str:
    """`event_time` as ISO-8601 text, `Z` for UTC: what each derived event of `event` states."""
    stamp = event._occurred_at  # one event may derive several: written once
    if stamp is None:
        stamp = iso_z(event_time(event))
        event._occurred_at = stamp
    return stamp


def _event_time(event: Event) -> datetime:
    for name in ("timestamp", "updatedAt", "dateAdded"):
        parsed = parse_time(event.body.get(name))
        if parsed is not None:
            return parsed
    return datetime.fromtimestamp(event.received_at / 1000, tz=UTC)


def zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_date(moment: datetime, tz_name: str | None) -> date:
    tz = zone(tz_name) or UTC
    return moment.astimezone(tz).date()
