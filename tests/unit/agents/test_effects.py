"""`streams.agents.effects`: what goes into a commit's record batch and how a marker is applied,
without Kafka (the fault tests kill workers against a real broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)
from aiokafka.record.memory_records import MemoryRecords

from streams.agents.effects import (
    MARKER_HEADER,
    Effects,
    TooLarge,
    _marker,
    _record_batch,
    _with_patience,
    is_marker,
    marker_writes,
)
from streams.agents.staged import Staged
from streams.codec import loads


class Record:
    """What the agents hand over: Faust's event, with its message's partition and offset."""

    def __init__(self, partition: int, offset: int) -> None:
        self.message = SimpleNamespace(partition=partition, offset=offset)


def record(partition: int, offset: int) -> Any:
    return Record(partition, offset)


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers="unused:9092", max_batch_size=4_000)
    yield producer
    producer._closed = True  # never started: nothing to stop


def staged_writes() -> dict[str, Staged]:
    revenue, leads = Staged({"gone": 1}), Staged({})
    revenue.origin = record(0, 7)
    revenue["loc-a"] = {"days": {"2026-03-01": 500}}
    del revenue["gone"]
    leads.origin = record(1, 3)
    leads["loc-b"] = {"days": {"2026-03-01": 2}}
    return {"revenue": revenue, "leads": leads}


def test_a_marker_holds_the_writes_whose_records_came_from_its_partition() -> None:
    markers = marker_writes(staged_writes())
    assert markers[0] == {
        "partition": 0,
        "set": [["revenue", "loc-a", {"days": {"2026-03-01": 500}}]],
        "deleted": [["revenue", "gone"]],
    }
    assert markers[1] == {
        "partition": 1,
        "set": [["leads", "loc-b", {"days": {"2026-03-01": 2}}]],
        "deleted": [],
    }
    assert sorted(markers) == [0, 1]  # partition 2 wrote nothing: no marker


async def test_the_record_batch_is_the_derived_events_then_the_marker(
    producer: AIOKafkaProducer,
) -> None:
    derived = [{"id": "e1", "channel": "location:loc-a"}, {"id": "e2", "channel": "user:u"}]
    marker = marker_writes(staged_writes())[0]
    batch = _record_batch(producer, derived, marker)
    assert batch.append(key=b"late", value=b"x", timestamp=None) is None  # closed: atomic
    records = list(MemoryRecords(bytes(batch._build())).next_batch())
    assert [(r.key, loads(r.value)) for r in records[:2]] == [
        (b"location:loc-a", derived[0]),
        (b"user:u", derived[1]),
    ]
    assert not is_marker(records[0].headers)
    assert records[2].key is None and is_marker(records[2].headers)
    assert records[2].headers == [(MARKER_HEADER, b"0")]
    assert loads(records[2].value) == marker


async def test_effects_that_do_not_fit_one_record_batch_are_refused(
    producer: AIOKafkaProducer,
) -> None:
    big = Staged({})
    big.origin = record(0, 1)
    big["loc"] = "x" * 5_000
    with pytest.raises(TooLarge):
        _record_batch(producer, [], marker_writes({"t": big})[0], limit=4_000)
    many = [{"id": f"e{n}", "channel": "location:loc", "data": "y" * 200} for n in range(40)]
    with pytest.raises(TooLarge):
        _record_batch(producer, many, _marker(0), limit=4_000)


async def test_applying_a_marker_writes_and_deletes_what_it_holds() -> None:
    tables: dict[str, dict[str, Any]] = {"revenue": {"gone": 1, "loc-a": "old"}, "leads": {}}

    async def no_flush() -> None:
        return None

    effects = Effects("unused:9092", "derived", tables, no_flush)
    marker = marker_writes(staged_writes())[0]
    effects._apply_marker(marker, record(0, 7))
    effects._apply_marker(marker, record(0, 7))  # again: the same state
    assert tables == {"revenue": {"loc-a": {"days": {"2026-03-01": 500}}}, "leads": {}}


async def test_with_patience_tries_again_after_transient_kafka_errors() -> None:
    attempts: list[int] = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise KafkaConnectionError("Unable to bootstrap")
        return "answered"

    assert await _with_patience("testing", flaky, patience=5) == "answered"
    assert len(attempts) == 3


async def test_with_patience_gives_up_after_the_patience_with_the_last_error() -> None:
    async def down() -> None:
        raise KafkaTimeoutError("Failed to get offsets by times in 40000 ms")

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no answer from Kafka in 2s: .*offsets by times"):
        await _with_patience("testing", down, patience=2)
    assert time.monotonic() - started < 3


async def test_with_patience_lets_a_permanent_error_through_at_once() -> None:
    attempts: list[int] = []

    async def refused() -> None:
        attempts.append(1)
        raise TopicAuthorizationFailedError()

    with pytest.raises(TopicAuthorizationFailedError):
        await _with_patience("testing", refused, patience=5)
    assert len(attempts) == 1


async def test_with_patience_is_cancelled_like_any_wait() -> None:
    async def down() -> None:
        raise KafkaConnectionError("Unable to bootstrap")

    task = asyncio.create_task(_with_patience("testing", down, patience=60))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
