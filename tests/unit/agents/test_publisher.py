from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from streams import metrics
from streams.ably_sink import LogSink, Outcome
from streams.agents.publisher import (
    COMMIT_SECONDS,
    ROUND_CHANNELS,
    Publisher,
    batch_spec,
    supervised,
)
from streams.outbox import Outbox


def derived(n: int, channel: str) -> dict[str, Any]:
    return {"id": f"id{n}:0", "name": "new-message", "channel": channel, "data": {"n": n}}


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


class Consumer:
    """Only what the sending side touches: commits, recorded with the publishes made by then."""

    def __init__(self, sink: ScriptedSink) -> None:
        self.sink = sink
        self.commits: list[tuple[dict[str, int], int]] = []

    async def commit(self, offsets: dict[str, int]) -> None:
        self.commits.append((dict(offsets), len(self.sink.calls)))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publisher_of(events: list[tuple[str, int, dict[str, Any]]], sink: ScriptedSink) -> Publisher:
    dead: list[tuple[str, str]] = []

    async def dead_letter(event: dict[str, Any], reason: str) -> None:
        dead.append((event["id"], reason))

    outbox = Outbox(rate=50, clock=Clock())
    for partition, offset, item in events:
        outbox.add(item, partition, offset)
    publisher = Publisher(Consumer(sink), sink, dead_letter, outbox)  # type: ignore[arg-type]
    publisher.dead = dead  # type: ignore[attr-defined]
    return publisher


async def send_all(publisher: Publisher) -> list[float]:
    """Send until the outbox is empty, the clock jumping over every wait; the waits."""
    clock, waits = publisher.outbox.clock, []
    while len(publisher.outbox):
        sent, _ = await publisher.send_round()
        await publisher.commit(force=True)
        if not sent:
            wait = publisher.outbox.wait()
            assert wait is not None and wait > 0
            waits.append(wait)
            clock.now += wait  # type: ignore[attr-defined]
    return waits


def test_batch_spec_is_one_message_with_its_own_id_and_json_data() -> None:
    assert batch_spec(derived(7, "user:u1")) == {
        "channels": "user:u1",
        "messages": {
            "id": "id7:0",
            "name": "new-message",
            "data": '{"n":7}',
            "encoding": "json",
        },
    }


async def test_retryable_failures_are_retried_before_the_channel_moves_on() -> None:
    busy = Outcome(False, retryable=True, reason="50300: busy")
    sink = ScriptedSink([{"a": busy}, {"a": busy}])  # channel a fails twice, then succeeds
    publisher = publisher_of(
        [("p0", 0, derived(1, "a")), ("p0", 1, derived(2, "a")), ("p0", 2, derived(3, "b"))], sink
    )
    waits = await send_all(publisher)
    sent_to_a = [s["messages"]["id"] for call in sink.calls for s in call if s["channels"] == "a"]
    # id1 three times (two failures), and id2 only after id1 went through: order kept, none lost.
    assert sent_to_a == ["id1:0", "id1:0", "id1:0", "id2:0"]
    assert publisher.dead == []  # type: ignore[attr-defined]
    # Channel a alone backed off, longer after its second failure; b went in the first round.
    assert waits == [0.25, 0.5]
    assert [s["channels"] for s in sink.calls[0]] == ["a", "b"]


async def test_a_failing_channel_does_not_hold_the_others_back() -> None:
    busy = Outcome(False, retryable=True, reason="42913: rate limit")
    sink = ScriptedSink([{"a": busy}] * 4)
    events = [("p0", 0, derived(0, "a"))] + [("p0", n, derived(n, "b")) for n in range(1, 6)]
    publisher = publisher_of(events, sink)
    await send_all(publisher)
    to_b = [n for n, call in enumerate(sink.calls) for s in call if s["channels"] == "b"]
    assert to_b == [0, 1, 2, 3, 4]  # a round each, while a waits out its backoff


async def test_permanent_failures_go_to_the_dead_letters_with_the_reason() -> None:
    refused = Outcome(False, retryable=False, reason="40160: capability refused")
    sink = ScriptedSink([{"b": refused}])
    publisher = publisher_of([("p0", 0, derived(1, "a")), ("p0", 1, derived(2, "b"))], sink)
    await send_all(publisher)
    assert publisher.dead == [("id2:0", "40160: capability refused")]  # type: ignore[attr-defined]
    assert len(sink.calls) == 1


async def test_offsets_are_committed_once_their_events_are_done() -> None:
    sink = ScriptedSink([{"a": Outcome(False, True, "503")}])
    publisher = publisher_of(
        [("p0", 7, derived(1, "a")), ("p0", 8, derived(2, "a")), ("p1", 3, derived(3, "b"))], sink
    )
    await send_all(publisher)
    commits = publisher.consumer.commits  # type: ignore[attr-defined]
    # After the first round a failed (p0 stays at 7) and b went (p1 past 3); then a's two went.
    assert commits == [({"p0": 7, "p1": 4}, 1), ({"p0": 8}, 2), ({"p0": 9}, 3)]


async def test_offsets_done_are_committed_at_most_every_commit_seconds() -> None:
    sink = ScriptedSink([])
    publisher = publisher_of([("p0", 0, derived(0, "a"))], sink)
    clock, commits = publisher.outbox.clock, publisher.consumer.commits  # type: ignore[attr-defined]
    await publisher.send_round()
    await publisher.commit()
    assert commits == [({"p0": 1}, 1)]  # the first at once
    for n in (1, 2):  # two more rounds, each emptying the outbox, within COMMIT_SECONDS
        publisher.outbox.add(derived(n, f"c{n}"), "p0", n)
        await publisher.send_round()
        await publisher.commit()
    assert commits == [({"p0": 1}, 1)]
    assert publisher.commit_due() == pytest.approx(COMMIT_SECONDS)
    clock.now += COMMIT_SECONDS  # type: ignore[attr-defined]
    assert publisher.commit_due() == 0
    await publisher.commit()
    assert commits == [({"p0": 1}, 1), ({"p0": 3}, 3)]
    assert publisher.commit_due() is None


async def test_the_last_offsets_done_are_committed_without_new_events() -> None:
    sink = ScriptedSink([])
    publisher = Publisher(Consumer(sink), sink, _no_dead_letters, Outbox(rate=50))  # type: ignore[arg-type]
    sender = asyncio.create_task(publisher.send_forever())
    try:
        started = time.monotonic()
        for n in range(3):  # three rounds in quick succession
            publisher.outbox.add(derived(n, f"c{n}"), "p0", n)
            publisher.ready.set()
            while len(sink.calls) <= n:
                await asyncio.sleep(0.005)
        quick = time.monotonic() - started < COMMIT_SECONDS
        commits = publisher.consumer.commits  # type: ignore[attr-defined]
        for _ in range(200):  # nothing new arrives: the last commit still comes
            if commits and commits[-1][0] == {"p0": 3}:
                break
            await asyncio.sleep(0.01)
        assert commits[-1][0] == {"p0": 3}
        if quick:  # the first at once, the rest together (not one a round)
            assert [offsets for offsets, _ in commits] == [{"p0": 1}, {"p0": 3}]
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def _no_dead_letters(event: dict[str, Any], reason: str) -> None:
    raise AssertionError(f"dead-lettered {event['id']}: {reason}")


async def test_a_round_names_at_most_the_channels_ably_takes_in_one_batch_publish() -> None:
    sink = ScriptedSink([])
    events = [("p0", n, derived(n, f"user:u{n}")) for n in range(ROUND_CHANNELS + 20)]
    publisher = publisher_of(events, sink)
    await send_all(publisher)
    assert [len(call) for call in sink.calls] == [ROUND_CHANNELS, 20]


async def no_dead_letter(event: dict[str, Any], reason: str) -> None:
    raise AssertionError(f"nothing should be dead-lettered: {reason}")


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
    outbox = Outbox(rate=50)
    outbox.add(derived(1, "a"), "p0", 0)
    outbox.add(derived(2, "b"), "p0", 1)
    await Publisher(None, LogSink(), no_dead_letter, outbox).send_round()  # type: ignore[arg-type]
    assert counted("streams_published_total") == published
    assert counted("streams_logged_not_published_total") == logged + 2


class OnePartition:
    """What the reading side touches of a consumer assigned one partition, besides its fetch."""

    def assignment(self) -> set[str]:
        return {"p0"}

    def pause(self, *partitions: str) -> None:
        return None

    def resume(self, *partitions: str) -> None:
        return None


class BrokenReader(OnePartition):
    """A consumer whose fetch fails: the publisher must fail too, for its supervisor."""

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Any]]:
        raise KafkaConnectionError("the broker went away")


async def test_a_failure_to_read_stops_the_publisher_so_that_it_is_started_again() -> None:
    publisher = Publisher(BrokenReader(), LogSink(), no_dead_letter, Outbox(rate=50))  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(publisher.run(), timeout=5)


class QuietReader(OnePartition, Consumer):
    """A consumer with nothing more to read: the events are put in the outbox by the test."""

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Any]]:
        await asyncio.sleep(timeout_ms / 1000)
        return {}


async def test_a_stopped_publisher_commits_what_it_has_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Commits far apart: only the first goes during the run, the rest must come at the stop.
    monkeypatch.setattr("streams.agents.publisher.COMMIT_SECONDS", 60.0)
    sink = ScriptedSink([])
    consumer = QuietReader(sink)
    publisher = Publisher(consumer, sink, _no_dead_letters, Outbox(rate=50))  # type: ignore[arg-type]
    running = asyncio.create_task(publisher.run())
    for n in range(3):
        publisher.outbox.add(derived(n, f"c{n}"), "p0", n)
        publisher.ready.set()
        while len(sink.calls) <= n:
            await asyncio.sleep(0.005)
    assert [offsets for offsets, _ in consumer.commits] == [{"p0": 1}]
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert [offsets for offsets, _ in consumer.commits] == [{"p0": 1}, {"p0": 3}]


class StuckCommits(QuietReader):
    async def commit(self, offsets: dict[str, int]) -> None:
        await asyncio.sleep(3600)  # a coordinator that never answers


async def test_a_stopping_publisher_does_not_wait_long_for_its_last_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streams.agents.publisher.LAST_COMMIT_SECONDS", 0.05)
    sink = ScriptedSink([])
    publisher = Publisher(StuckCommits(sink), sink, _no_dead_letters, Outbox(rate=50))  # type: ignore[arg-type]
    publisher.outbox.add(derived(0, "c0"), "p0", 0)
    publisher.outbox.delivered(publisher.outbox.round(1)[0])  # done, not committed yet
    running = asyncio.create_task(publisher.run())
    await asyncio.sleep(0.01)
    running.cancel()
    await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), timeout=2)
