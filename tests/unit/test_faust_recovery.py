"""The recovery guard: source partitions are resumed only after Faust's recovery completion
(its seek and its emptying of the queues) has run."""

from __future__ import annotations

from typing import Any

from faust.tables.recovery import Recovery

from streams import faust_recovery


class Consumer:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def resume_partitions(self, partitions: set[int]) -> None:
        self.calls.append(f"resume {sorted(partitions)}")

    async def perform_seek(self) -> None:
        self.calls.append("seek")


class App:
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer


class FakeRecovery:
    """Faust's order: resume the source partitions, seek, then empty the queues."""

    def __init__(self, calls: list[str]) -> None:
        self.app = App(Consumer(calls))
        self.calls = calls

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.app.consumer.resume_partitions({1, 0})
        await self.app.consumer.perform_seek()
        self.calls.append("queues emptied")


async def test_partitions_are_resumed_after_the_seek_and_the_emptied_queues() -> None:
    calls: list[str] = []
    recovery = FakeRecovery(calls)
    guarded = faust_recovery._resuming_after(FakeRecovery.on_recovery_completed)
    await guarded(recovery, 7)
    assert calls == ["seek", "queues emptied", "resume [0, 1]"]
    # The consumer is itself again afterwards.
    assert "resume_partitions" not in vars(recovery.app.consumer)


def test_install_guards_faust_once() -> None:
    faust_recovery.install()
    guarded: Any = Recovery.on_recovery_completed
    faust_recovery.install()
    assert Recovery.on_recovery_completed is guarded
    assert getattr(guarded, faust_recovery._GUARDED)
