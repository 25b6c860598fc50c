from __future__ import annotations

from typing import Any

from streams.ably_sink import Outcome
from streams.agents.publisher import batch_spec, deliver, rounds


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
