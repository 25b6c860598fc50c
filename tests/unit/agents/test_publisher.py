from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from streams import metrics
from streams.ably_sink import LogSink, Outcome
from streams.agents.publisher import batch_spec, deliver, publish_forever, rounds, supervised
from streams.codec import dumps


def derived(n: int, channel: str) -> dict[str, Any]:
    return {"id": f"id{n}:0", "name": "unread-changed", "channel": channel, "data": {"n": n}}


class ScriptedSink:
    """Answers each publish from a script of per-channel outcomes; records what was sent."""

    def __init__(self, script: list[dict[str, Outcome]]) -> None:
        self.script = script
        self.calls: list[list[dict[str, Any]]] = []

    async def publish(self, specs: list[dict[str, Any]]) -> list[Outcome]:
        self.calls.append(specs)
        answers = self.script.pop(0) if self.script else {}
        return [answers.get(s["channels"], Outcome(True)) for s in specs]

    async def close(self) -> None:
        return None


async def no_sleep(seconds: float) -> None:
    return None


def test_rounds_hold_one_event_per_channel_in_order() -> None:
    events = [derived(1, "a"), derived(2, "a"), derived(3, "b"), derived(4, "a"), derived(5, "c")]
    assert [[e["id"] for e in r] for r in rounds(events)] == [
        ["id1:0", "id3:0", "id5:0"],
        ["id2:0"],
        ["id4:0"],
    ]


def test_batch_spec_is_one_message_with_its_own_id_and_json_data() -> None:
    assert batch_spec(derived(7, "user:u1")) == {
        "channels": "user:u1",
        "messages": {
            "id": "id7:0",
            "name": "unread-changed",
            "data": '{"n":7}',
            "encoding": "json",
        },
    }


async def test_retryable_failures_are_retried_before_the_channel_moves_on() -> None:
    busy = Outcome(False, retryable=True, reason="50300: busy")
    sink = ScriptedSink([{"a": busy}, {"a": busy}])  # channel a fails twice, then succeeds
    dead: list[Any] = []

    async def dead_letter(event: dict[str, Any], reason: str) -> None:
        dead.append((event, reason))

    await deliver([derived(1, "a"), derived(2, "a"), derived(3, "b")], sink, dead_letter, no_sleep)
    sent_to_a = [s["messages"]["id"] for call in sink.calls for s in call if s["channels"] == "a"]
    # id1 three times (two failures), and id2 only after id1 went through: order kept, none lost.
    assert sent_to_a == ["id1:0", "id1:0", "id1:0", "id2:0"]
    assert dead == []


async def test_permanent_failures_go_to_the_dead_letters_with_the_reason() -> None:
    refused = Outcome(False, retryable=False, reason="40160: capability refused")
    sink = ScriptedSink([{"b": refused}])
    dead: list[Any] = []

    async def dead_letter(event: dict[str, Any], reason: str) -> None:
        dead.append((event["id"], reason))

    await deliver([derived(1, "a"), derived(2, "b")], sink, dead_letter, no_sleep)
    assert dead == [("id2:0", "40160: capability refused")]
    assert len(sink.calls) == 1


async def no_dead_letter(event: dict[str, Any], reason: str) -> None:
    raise AssertionError(f"nothing should be dead-lettered: {reason}")


class Record:
    def __init__(
        self, offset: int, event: dict[str, Any], headers: tuple[tuple[str, bytes], ...] = ()
    ) -> None:
        self.offset = offset
        self.value = dumps(event)
        self.headers = headers


class OneBatchConsumer:
    """Offers one fetch, then stops the loop; records commits and what was delivered by then."""

    def __init__(self, fetched: dict[str, list[Record]], sink: ScriptedSink) -> None:
        self.fetched = fetched
        self.sink = sink
        self.commits: list[tuple[dict[str, int], int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Record]]:
        if self.commits:
            raise asyncio.CancelledError
        return self.fetched

    async def commit(self, offsets: dict[str, int]) -> None:
        self.commits.append((offsets, len(self.sink.calls)))


async def test_a_batch_is_committed_after_it_is_delivered_past_its_last_offset() -> None:
    sink = ScriptedSink([{"a": Outcome(False, True, "503")}])
    consumer = OneBatchConsumer(
        {
            "p0": [Record(7, derived(1, "a")), Record(8, derived(2, "a"))],
            "p1": [Record(3, derived(3, "b"))],
        },
        sink,
    )
    with pytest.raises(asyncio.CancelledError):
        await publish_forever(consumer, sink, no_dead_letter, asyncio.Lock())  # type: ignore[arg-type]
    # Three publishes (a retried, then the second round) happened before the one commit.
    assert consumer.commits == [({"p0": 9, "p1": 4}, 3)]
    assert all(s["messages"]["id"].startswith("id") for call in sink.calls for s in call)
    assert [s["messages"]["id"] for s in sink.calls[-1]] == ["id2:0"]


async def test_a_failed_publisher_starts_again_with_backoff_until_it_is_cancelled() -> None:
    runs: list[float] = []
    slept: list[float] = []
    now = [0.0]

    async def run() -> None:
        runs.append(now[0])
        if len(runs) == 3:
            now[0] += 120  # the third run lasts two minutes before it fails
        if len(runs) == 5:
            raise asyncio.CancelledError  # the worker stops
        raise KafkaConnectionError("dead-letter topic unreachable")

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(asyncio.CancelledError):
        await supervised(run, sleep=sleep, clock=lambda: now[0])
    assert len(runs) == 5
    # Doubling after quick failures; back to 1 s after a run that lasted a minute.
    assert slept == [1.0, 2.0, 1.0, 2.0]


async def test_without_ably_events_are_counted_as_logged_not_as_published() -> None:
    def counted(name: str) -> int:
        lines = [line for line in metrics.render().splitlines() if line.startswith(name + "{")]
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in lines)

    published, logged = (
        counted("streams_published_total"),
        counted("streams_logged_not_published_total"),
    )
    await deliver([derived(1, "a"), derived(2, "b")], LogSink(), no_dead_letter, no_sleep)
    assert counted("streams_published_total") == published
    assert counted("streams_logged_not_published_total") == logged + 2
