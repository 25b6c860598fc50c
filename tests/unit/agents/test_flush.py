"""`effects.flush_changelogs`: the agents''s wait for everything sent so far, against a stand-in for
Faust's producer buffer (a queue drained by a sender task, as Faust's `ProducerBuffer` is)."""

from __future__ import annotations

import asyncio

from streams.agents.effects import flush_changelogs


class _Buffer:
    """Faust's ProducerBuffer as `flush_changelogs` sees it: `pending`, `size`, `message_sent`."""

    def __init__(self) -> None:
        self.pending: asyncio.Queue[str] = asyncio.Queue()
        self.message_sent = asyncio.Event()
        self.handed_over: list[str] = []

    @property
    def size(self) -> int:
        return self.pending.qsize()

    async def sender(self) -> None:
        while True:
            message = await self.pending.get()
            await asyncio.sleep(0.01)  # handing it to aiokafka takes a while
            self.handed_over.append(message)
            self.message_sent.set()


class _Producer:
    def __init__(self) -> None:
        self.buffer = _Buffer()
        self.flushed_after: list[list[str]] = []

    async def flush(self) -> None:
        self.flushed_after.append(list(self.buffer.handed_over))


async def test_waits_for_the_queue_and_the_message_in_hand_thenflush_changelogses_the_client() -> (
    None
):
    producer = _Producer()
    sender = asyncio.create_task(producer.buffer.sender())
    try:
        await asyncio.sleep(0)  # the sender waits for its first message
        for message in ("a", "b", "c"):
            producer.buffer.pending.put_nowait(message)
        await asyncio.sleep(0)  # the sender took "a" off the queue: size 2, one in hand
        await flush_changelogs(producer)
        # Flushed once every message was handed over, the one in hand included.
        assert producer.flushed_after[-1] == ["a", "b", "c"]
        await asyncio.wait_for(flush_changelogs(producer), 1)  # nothing pending: returns at once
    finally:
        sender.cancel()
