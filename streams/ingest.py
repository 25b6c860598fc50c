"""`streams ingest FILE.jsonl|-`: load exported webhook bodies, one JSON object per line.

Lines that are not a JSON object are counted and reported, never written. Records are marked
`source=import` (projections only, no notifications) unless `live` is asked for. `wait_consumed`
returns once the worker group has committed past every record written: every projection has
consumed it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streams.codec import loads_object
from streams.ingress.raw_log import Incoming, RawLog
from streams.topics import RAW_WEBHOOKS

__all__ = ["IngestReport", "ingest_lines", "wait_consumed"]

CHUNK = 1000


@dataclass
class IngestReport:
    written: int = 0
    broken: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    last_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last offset


def parse_lines(lines: Iterable[str], report: IngestReport) -> list[Incoming]:
    parsed = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        body = text.encode()
        try:
            parsed.append(Incoming(body, loads_object(body)))
        except ValueError as exc:
            report.broken.append((number, str(exc)))
    return parsed


async def ingest_lines(
    lines: Iterable[str], raw_log: RawLog, *, live: bool = False
) -> IngestReport:
    report = IngestReport()
    records = parse_lines(lines, report)
    for start in range(0, len(records), CHUNK):
        written = await raw_log.append_many(
            records[start : start + CHUNK], source="live" if live else "import", signature="trusted"
        )
        for metadata in written:
            report.last_offsets[metadata.partition] = max(
                report.last_offsets.get(metadata.partition, -1), metadata.offset
            )
        report.written += len(written)
    return report


async def wait_consumed(
    bootstrap: str, group: str, last_offsets: dict[int, int], timeout: float = 300.0
) -> float:
    """Wait until `group` has committed past `last_offsets`; return the seconds waited."""
    started = time.monotonic()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            behind = {
                p: o
                for p, o in last_offsets.items()
                if (meta := committed.get(TopicPartition(RAW_WEBHOOKS.name, p))) is None
                or meta.offset <= o
            }
            if not behind:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(
                    f"projections did not consume the records within {timeout:.0f}s"
                    f" (partitions behind: {sorted(behind)})"
                )
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
