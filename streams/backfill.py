"""`streams backfill mongo`: history from the legacy MongoDB store into the raw log.

Legacy documents are read with PyMongo's `AsyncMongoClient` in batches, in insertion order
(`_id`: the old backend stored webhooks as they arrived), and written as raw records with
`source=backfill` (projections only, no notifications), the payload untouched, and the original
receive time in `received-at` when the document has one.

It never doubles a record:
- a checkpoint (the last `_id` written and acknowledged) in `STREAMS_DATA_DIR/backfill/` lets a
  re-run continue where the last one stopped;
- webhook ids already in the log are skipped: live deliveries that overlap the legacy history,
  and records a killed run wrote after its last checkpoint.

The legacy layout is configurable (`LegacyLayout`): the field holding the body (a sub-document, or
the original JSON text, which is then kept byte for byte), the event type, the webhook id and the
receive time (a date, or epoch milliseconds).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.codec import dumps, loads_object
from streams.errors import StreamsError
from streams.ingress.raw_log import Incoming, RawLog
from streams.progress import Progress
from streams.topics import RAW_WEBHOOKS

__all__ = ["BackfillReport", "LegacyLayout", "backfill", "logged_webhook_ids", "to_incoming"]


@dataclass(frozen=True)
class LegacyLayout:
    body: str = "body"
    type: str = "type"
    webhook_id: str = "webhookId"
    received_at: str = "receivedAt"


@dataclass
class BackfillReport:
    read: int = 0
    written: int = 0
    already_in_log: int = 0
    unusable: int = 0


class UnusableDocument(StreamsError, ValueError):
    pass


def to_incoming(document: dict[str, Any], layout: LegacyLayout) -> Incoming:
    """The raw record for one legacy document."""
    body = _field(document, layout.body)
    if isinstance(body, str):
        raw = body.encode()
        try:
            payload = loads_object(raw)
        except ValueError as exc:
            raise UnusableDocument(f"{layout.body}: {exc}") from None
    elif isinstance(body, dict):
        raw = dumps(body, default=str)  # BSON types (ObjectId, Decimal128) as strings
        payload = loads_object(raw)
    else:
        raise UnusableDocument(f"no {layout.body!r} object")
    kind = _field(document, layout.type)
    webhook = _field(document, layout.webhook_id)
    return Incoming(
        body=raw,
        payload=payload,
        received_at=_epoch_ms(_field(document, layout.received_at)),
        kind=kind if isinstance(kind, str) and kind else None,
        webhook_id=str(webhook) if webhook else None,
    )


async def logged_webhook_ids(bootstrap: str) -> set[str]:
    """Every webhook id already in the raw log (read from headers, bodies left alone)."""
    partitions = [TopicPartition(RAW_WEBHOOKS.name, p) for p in await _partitions(bootstrap)]
    ids: set[str] = set()
    if not partitions:
        return ids
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    headers = dict(record.headers)
                    if "webhook-id" in headers:
                        ids.add(headers["webhook-id"].decode())
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return ids


async def _partitions(bootstrap: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([RAW_WEBHOOKS.name])
    finally:
        await admin.close()
    return sorted(p["partition"] for d in described if not d["error_code"] for p in d["partitions"])


async def backfill(
    uri: str,
    db: str,
    collection: str,
    raw_log: RawLog,
    *,
    checkpoint_dir: Path,
    layout: LegacyLayout = LegacyLayout(),
    since: date | None = None,
    batch_size: int = 500,
    dry_run: bool = False,
) -> BackfillReport:
    report = BackfillReport()
    checkpoint = checkpoint_dir / f"{db}.{collection}.json"
    query: dict[str, Any] = {}
    if since is not None:
        start = datetime(since.year, since.month, since.day, tzinfo=UTC)
        query[layout.received_at] = {"$gte": start}
    last_id = _read_checkpoint(checkpoint)
    if last_id is not None:
        query["_id"] = {"$gt": last_id}
    in_log = await logged_webhook_ids(raw_log.bootstrap)

    from pymongo import ASCENDING, AsyncMongoClient  # imported when used: see streams.app

    client: AsyncMongoClient = AsyncMongoClient(uri, tz_aware=True)
    try:
        documents = client[db][collection]
        progress = Progress("backfill", await documents.count_documents(query))
        async for batch in _batches(documents.find(query).sort("_id", ASCENDING), batch_size):
            fresh: list[Incoming] = []
            for document in batch:
                report.read += 1
                try:
                    record = to_incoming(document, layout)
                except UnusableDocument:
                    report.unusable += 1
                    continue
                if record.webhook_id and record.webhook_id in in_log:
                    report.already_in_log += 1
                    continue
                if record.webhook_id:
                    in_log.add(record.webhook_id)  # a redelivery later in the store: skip it
                fresh.append(record)
            if not dry_run:
                if fresh:
                    await raw_log.append_many(fresh, source="backfill", signature="trusted")
                _write_checkpoint(checkpoint, batch[-1]["_id"])
            report.written += len(fresh)
            progress.advance(len(batch))
        progress.finish()
    finally:
        await client.close()
    return report


async def _batches(cursor: Any, size: int) -> AsyncIterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    async for document in cursor:
        batch.append(document)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _field(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


def _read_checkpoint(path: Path) -> Any:
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    value = saved["last_id"]
    if not isinstance(value, dict):
        return value
    from bson import ObjectId  # PyMongo's, imported when used: see `backfill`

    return ObjectId(value["$oid"])


def _write_checkpoint(path: Path, last_id: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    from bson import ObjectId

    value = {"$oid": str(last_id)} if isinstance(last_id, ObjectId) else last_id
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"last_id": value}))
    temporary.replace(path)  # atomic: a kill leaves the old checkpoint or the new one
