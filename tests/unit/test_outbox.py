from __future__ import annotations

import random
from typing import Any

import pytest

from streams.outbox import Outbox


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def event(n: int, channel: str, name: str = "new-message", **data: Any) -> dict[str, Any]:
    return {"id": f"id{n}:0", "name": name, "channel": channel, "data": {"n": n, **data}}


def unread(n: int, channel: str, conversation: str, total: int) -> dict[str, Any]:
    return event(n, channel, "unread-changed", conversation_id=conversation, location_total=total)


def ids(entries: list[Any]) -> list[str]:
    return [e.event["id"] for e in entries]


def test_a_round_holds_the_first_event_of_each_channel_and_the_served_go_to_the_back() -> None:
    outbox = Outbox(rate=50)
    for n, channel in enumerate(["a", "a", "b", "c", "a"]):
        outbox.add(event(n, channel), "p0", n)
    first = outbox.round(limit=2)
    assert ids(first) == ["id0:0", "id2:0"]
    assert ids(outbox.round(limit=2)) == ["id3:0"]  # a and b are on their way
    for entry in first:
        outbox.delivered(entry)
    assert ids(outbox.round(limit=5)) == ["id1:0"]  # c is in flight; a's next
    assert len(outbox) == 3


def test_a_channel_sends_at_most_rate_messages_in_a_second_counted_from_the_acks() -> None:
    clock = Clock()
    outbox = Outbox(rate=3, clock=clock)
    for n in range(5):
        outbox.add(event(n, "location:l1"), "p0", n)
    sent = []
    for _ in range(3):
        (entry,) = outbox.round(limit=10)
        clock.now += 0.1
        outbox.delivered(entry)  # acked at 100.1, 100.2, 100.3
        sent.append(entry)
    assert outbox.round(limit=10) == []
    assert outbox.wait() == pytest.approx(0.8)  # the first ack's second ends at 101.1
    clock.now = 101.09
    assert outbox.round(limit=10) == []
    clock.now = 101.1
    assert ids(outbox.round(limit=10)) == ["id3:0"]


def test_a_waiting_state_event_is_replaced_by_a_newer_one_of_the_same_subject() -> None:
    outbox = Outbox(rate=50)
    outbox.add(unread(0, "location:l1", "c1", total=1), "p0", 0)
    outbox.add(event(1, "location:l1"), "p0", 1)
    outbox.add(unread(2, "location:l1", "c2", total=2), "p0", 2)  # another conversation: kept
    outbox.add(unread(3, "location:l1", "c1", total=3), "p0", 3)
    outbox.add(unread(4, "user:u1", "c1", total=3), "p0", 4)  # another channel: kept
    assert outbox.superseded == 1
    order = []
    while entries := outbox.round(limit=10):
        for entry in entries:
            order.append(entry.event["id"])
            outbox.delivered(entry)
    assert order == ["id1:0", "id4:0", "id2:0", "id3:0"]


def test_a_state_event_on_its_way_is_not_replaced() -> None:
    clock = Clock()
    outbox = Outbox(rate=50, clock=clock)
    outbox.add(unread(0, "location:l1", "c1", total=1), "p0", 0)
    (sending,) = outbox.round(limit=10)
    outbox.add(unread(1, "location:l1", "c1", total=2), "p0", 1)
    outbox.retry(sending)  # it failed: it goes again, then the newer one
    clock.now += outbox.wait() or 0
    (again,) = outbox.round(limit=10)
    outbox.delivered(again)
    assert ids([again]) == ["id0:0"] and ids(outbox.round(limit=10)) == ["id1:0"]


def test_offsets_are_done_once_delivered_refused_or_superseded() -> None:
    outbox = Outbox(rate=50)
    outbox.add(unread(0, "location:l1", "c1", total=1), "p0", 10)
    outbox.add(event(1, "location:l1"), "p0", 11)
    outbox.add(event(2, "location:l2"), "p1", 5)
    assert outbox.done_offsets() == {"p0": 10, "p1": 5}
    outbox.add(unread(3, "location:l1", "c1", total=2), "p0", 12)  # 10 superseded
    assert outbox.done_offsets() == {"p0": 11, "p1": 5}
    first, second = outbox.round(limit=10)
    outbox.delivered(first)
    outbox.refused(second)
    assert outbox.done_offsets() == {"p0": 12, "p1": 6}
    (last,) = outbox.round(limit=10)
    outbox.delivered(last)
    assert outbox.done_offsets() == {"p0": 13, "p1": 6} and len(outbox) == 0


def test_forgotten_partitions_leave_nothing_behind() -> None:
    outbox = Outbox(rate=50)
    outbox.add(unread(0, "location:l1", "c1", total=1), "p0", 0)
    outbox.add(event(1, "location:l2"), "p1", 0)
    outbox.forget(["p0"])
    assert len(outbox) == 1 and outbox.done_offsets() == {"p1": 0}
    outbox.add(unread(2, "location:l1", "c1", total=2), "p0", 1)  # read again by a new owner
    assert outbox.superseded == 0
    assert sorted(ids(outbox.round(limit=10))) == ["id1:0", "id2:0"]


def test_under_a_burst_discrete_events_arrive_once_in_order_and_the_last_state_is_final() -> None:
    rng = random.Random(5)
    clock = Clock()
    outbox = Outbox(rate=50, clock=clock)
    added: list[dict[str, Any]] = []
    for n in range(3000):
        channel = rng.choice(["location:l1", "location:l1", "user:u1", "user:u2"])
        if rng.random() < 0.5:
            item = unread(n, channel, rng.choice(["c1", "c2"]), total=n)
        else:
            item = event(n, channel)
        added.append(item)
        outbox.add(item, "p0", n)
    delivered: dict[str, list[dict[str, Any]]] = {}
    acks: dict[str, list[float]] = {}
    while len(outbox):
        wait = outbox.wait()
        assert wait is not None
        clock.now += max(wait, 0.004)  # a publish takes 4 ms
        for entry in outbox.round(limit=100):
            outbox.delivered(entry)
            delivered.setdefault(entry.event["channel"], []).append(entry.event)
            acks.setdefault(entry.event["channel"], []).append(clock.now)
    for channel, times in acks.items():
        assert all(
            later - earlier >= 1.0 for earlier, later in zip(times, times[50:], strict=False)
        ), channel
        sent = delivered[channel]
        discrete = [
            e["id"] for e in added if e["channel"] == channel and e["name"] != "unread-changed"
        ]
        assert [e["id"] for e in sent if e["name"] != "unread-changed"] == discrete
        for conversation in ("c1", "c2"):
            states = [
                e
                for e in added
                if e["channel"] == channel and e["data"].get("conversation_id") == conversation
            ]
            got = [e for e in sent if e["data"].get("conversation_id") == conversation]
            assert got[-1] == states[-1]
    assert outbox.done_offsets() == {"p0": 3000}


def test_a_failed_channel_backs_off_longer_each_time_until_it_delivers() -> None:
    clock = Clock()
    outbox = Outbox(rate=50, clock=clock)
    outbox.add(event(0, "a"), "p0", 0)
    held = []
    for _ in range(3):
        (entry,) = outbox.round(limit=10)
        outbox.retry(entry)
        assert outbox.round(limit=10) == []  # held back
        held.append(outbox.wait())
        clock.now += outbox.wait() or 0
    assert held == [0.25, 0.5, 1.0]
    (entry,) = outbox.round(limit=10)
    outbox.delivered(entry)
    outbox.add(event(1, "a"), "p0", 1)
    assert ids(outbox.round(limit=10)) == ["id1:0"]  # delivered: no backoff left


def test_partitions_feeding_a_channel_over_its_backlog_bound_are_crowded() -> None:
    outbox = Outbox(rate=1)  # a bound of 60 waiting
    for n in range(61):
        outbox.add(event(n, "location:busy"), "p0" if n < 60 else "p1", n)
    outbox.add(event(99, "location:quiet"), "p2", 0)
    assert outbox.crowded() == {"p0", "p1"}
    (first,) = [e for e in outbox.round(limit=10) if e.event["channel"] == "location:busy"]
    outbox.delivered(first)
    assert outbox.crowded() == set()
