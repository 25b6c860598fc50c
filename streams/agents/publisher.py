"""The publisher: derived events from `streams.derived.v1` to Ably.

It reads the topic with its own aiokafka consumer (group `streams-publisher`, committed records
only: a batch's derived events appear when its transaction commits) into the outbox
(`streams.outbox`), and sends what the outbox lets through in rounds: one Ably batch publish
(`POST /messages`) per round, at most one message per channel, each message its own BatchSpec so
its id de-duplicates on its own. Reading and sending run side by side: a burst on one channel,
held to Ably's per-channel rate, neither stops the reading nor delays the other channels.

Offsets are committed once their events are done (delivered, dead-lettered or superseded by a
newer state event; at most every `COMMIT_SECONDS`), so a worker that dies sends again at most
what was not done, with the same ids: Ably drops the repeats. Retryable failures (network, 5xx,
429) are sent again without limit, still first on their channel, which alone backs off (the
whole sender too when a whole round failed): a message is never skipped, and a failing channel
does not hold the others back. Permanent failures go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from streams import metrics
from streams.ably_sink import Sink
from streams.codec import dumps, loads
from streams.events import received_at_header
from streams.outbox import FIRST_BACKOFF, Entry, Outbox
from streams.topics import DERIVED, DLQ

__all__ = ["GROUP", "Publisher", "batch_spec", "publisher", "supervised"]

log = logging.getLogger(__name__)

GROUP = "streams-publisher"
BATCH = 500  # records read at a time
ROUND_CHANNELS = 100  # Ably's limit of channels in one batch publish
MAX_WAITING = 20_000  # events in the outbox before reading pauses altogether
# Offsets are committed at most this often, the last ones this long after they are done: a
# publisher that dies sends at most that much again (same ids: Ably drops them). A commit each
# time the outbox emptied was one per webhook at low rates (76 a second at 100 webhooks/s).
COMMIT_SECONDS = 0.2
LAST_COMMIT_SECONDS = 5.0  # the commit of a stopping publisher, at most
MAX_BACKOFF = 30.0
TIMER_SLACK = 0.001

DeadLetter = Callable[[dict[str, Any], str], Awaitable[None]]


def batch_spec(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "channels": event["channel"],
        "messages": {
            "id": event["id"],
            "name": event["name"],
            "data": dumps(event["data"]).decode(),
            "encoding": "json",
        },
    }


class Publisher:
    """One publisher's reading, sending and committing, over one consumer and one sink."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        sink: Sink,
        dead_letter: DeadLetter,
        outbox: Outbox,
    ) -> None:
        self.consumer, self.sink, self.dead_letter = consumer, sink, dead_letter
        self.outbox = outbox
        self.in_flight = asyncio.Lock()  # a round being sent, or a rebalance handing over
        self.ready = asyncio.Event()  # set when events arrive
        self.committed: dict[Hashable, int] = {}
        self.last_commit = 0.0

    async def run(self) -> None:
        """Read and send until one of them fails (its error is raised: the supervisor starts
        the publisher again) or the publisher is cancelled. Either way the offsets of what is
        done are committed last: a worker stopped for a deploy sends again only the round it
        cut short (Ably drops those ids)."""
        tasks = [asyncio.create_task(self.read_forever()), asyncio.create_task(self.send_forever())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # No round is in flight now: one cut short left its events not done (sent again).
            # Bounded: a broker that is down must not hold up a stopping worker.
            try:
                await asyncio.wait_for(self.commit(force=True), LAST_COMMIT_SECONDS)
            except TimeoutError:
                log.warning("publisher's last commit timed out; some events may be sent again")

    async def read_forever(self) -> None:
        while True:
            await self.read()

    async def read(self) -> None:
        assigned = self.consumer.assignment()
        # Not read for now: every partition when the outbox is full, else those feeding a
        # channel whose backlog is over its bound. Paused, not left unpolled: polling keeps the
        # consumer in its group.
        held = set(assigned) if len(self.outbox) >= MAX_WAITING else self.outbox.crowded()
        self.consumer.pause(*(tp for tp in assigned if tp in held))
        self.consumer.resume(*(tp for tp in assigned if tp not in held))
        timeout = 100 if held else 1000
        fetched = await self.consumer.getmany(timeout_ms=timeout, max_records=BATCH)
        for tp, records in fetched.items():
            for record in records:
                received = received_at_header(record.headers)  # from a webhook, if it has it
                self.outbox.add(loads(record.value), tp, record.offset, received)
        if fetched:
            self.ready.set()

    async def send_forever(self) -> None:
        backoff = FIRST_BACKOFF
        while True:
            self.ready.clear()
            async with self.in_flight:
                sent, retried = await self.send_round()
                await self.commit()
            metrics.gauge("streams_publish_waiting", len(self.outbox))
            if sent and retried == sent:
                # The whole round failed (Ably or the network is down): back off as a whole,
                # rather than try each channel in turn as its own backoff ends.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = FIRST_BACKOFF
            if sent:
                continue
            # Nothing may go now: wait for new events, for the first channel whose rate window
            # or backoff ends, or until the offsets done may be committed.
            waits = [w for w in (self.outbox.wait(), self.commit_due()) if w is not None]
            # A millisecond more: uvloop's timers count whole milliseconds and may fire up to
            # one early, which would find nothing due yet and go round again at once.
            timeout = min(waits) + TIMER_SLACK if waits else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)

    async def send_round(self) -> tuple[int, int]:
        """Send one round; (messages sent, messages to retry)."""
        entries = self.outbox.round(ROUND_CHANNELS)
        if not entries:
            return 0, 0
        outcomes = await self.sink.publish([batch_spec(e.event) for e in entries])
        now_ms = time.time() * 1000
        retry: list[tuple[Entry, str]] = []
        for entry, outcome in zip(entries, outcomes, strict=True):
            name = entry.event["name"]
            if outcome.logged_only:
                metrics.count("streams_logged_not_published_total", name=name)
                self.outbox.delivered(entry)
            elif outcome.delivered:
                metrics.count("streams_published_total", name=name)
                self.outbox.delivered(entry)
                if entry.received_at is not None:
                    seconds = max(0.0, now_ms - entry.received_at) / 1000
                    metrics.observe("streams_webhook_to_ably_seconds", seconds)
            elif outcome.retryable:
                retry.append((entry, outcome.reason))
                self.outbox.retry(entry)
            else:
                await self.dead_letter(entry.event, outcome.reason)
                self.outbox.refused(entry)
        if retry:
            metrics.count("streams_publish_retries_total", len(retry))
            log.warning("publish of %d message(s) failed (%s); retrying", len(retry), retry[0][1])
        if self.outbox.superseded:
            metrics.count("streams_publish_superseded_total", self.outbox.superseded)
            self.outbox.superseded = 0
        return len(entries), len(retry)

    def commit_due(self) -> float | None:
        """Seconds until the offsets done may be committed (0: now); None when they are."""
        done = self.outbox.done_offsets()
        if all(self.committed.get(tp) == offset for tp, offset in done.items()):
            return None
        return max(0.0, self.last_commit + COMMIT_SECONDS - self.outbox.clock())

    async def commit(self, *, force: bool = False, only: set[Hashable] | None = None) -> None:
        now = self.outbox.clock()
        if not force and now - self.last_commit < COMMIT_SECONDS:
            return
        offsets = {
            tp: offset
            for tp, offset in self.outbox.done_offsets().items()
            if self.committed.get(tp) != offset and (only is None or tp in only)
        }
        if not offsets:
            return
        self.last_commit = now
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # partitions moved meanwhile: their new owner sends again
            log.warning("publisher commit failed (%r); some events may be sent again", exc)
            return
        self.committed.update(offsets)

    async def hand_over(self, partitions: set[TopicPartition]) -> None:
        """Partitions going to another publisher: finish the round in flight, commit what is
        done, and leave the rest to the new owner."""
        async with self.in_flight:
            await self.commit(force=True, only=set(partitions))
            self.outbox.forget(partitions)
            for tp in partitions:
                self.committed.pop(tp, None)


class _HandOver(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.publisher: Publisher | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.publisher is not None:
            await self.publisher.hand_over(set(revoked))

    async def on_partitions_assigned(self, assigned: object) -> None:
        return None


async def supervised(
    run: Callable[[], Awaitable[None]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run `run` again whenever it fails, backing off 1 s, 2 s, ... up to MAX_BACKOFF (back to
    1 s after a run that lasted a minute). A publisher that stopped would leave the app without
    notifications until someone restarted the worker; a restarted one re-delivers its batch in
    flight with the same ids, which Ably drops."""
    backoff = 1.0
    while True:
        started = clock()
        try:
            await run()
            return
        except Exception:  # not CancelledError: a stopping worker stops the publisher
            log.exception("publisher failed; starting it again in %.0fs", backoff)
        if clock() - started > 60:
            backoff = 1.0
        await sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


def publisher(sink: Sink, bootstrap: str, channel_rate: int) -> Callable[[], Awaitable[None]]:
    """The publisher as a service of the worker: runs until cancelled."""

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )

        async def dead_letter(event: dict[str, Any], reason: str) -> None:
            log.error("dead-lettering %s to %s: %s", event["name"], event["channel"], reason)
            await producer.send_and_wait(
                DLQ.name,
                key=event["channel"].encode(),
                value=dumps(event),
                headers=[("error", reason.encode()), ("source-topic", DERIVED.name.encode())],
            )
            metrics.count("streams_dead_letters_total", family="publisher")

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=1 << 20,
        )
        listener = _HandOver()
        consumer.subscribe([DERIVED.name], listener=listener)
        await consumer.start()
        try:
            await producer.start()
            listener.publisher = Publisher(consumer, sink, dead_letter, Outbox(channel_rate))
            await listener.publisher.run()
        finally:
            await consumer.stop()
            await producer.stop()

    async def serve() -> None:
        try:
            await supervised(run)
        finally:
            await sink.close()

    return serve
