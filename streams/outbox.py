"""The publisher's outbox: derived events waiting for Ably, per channel, in order.

Ably takes at most `rate` messages a second on one channel (50 by default). Under a burst the
outbox keeps every channel under that:
- a channel sends at most one message per round, and its message n + `rate` leaves a second or
  more after Ably acknowledged its message n (so Ably, whatever the network's delays, never sees
  more than `rate` in a second);
- a state event waiting to be sent is dropped when a newer one of the same subject arrives for the
  same channel (`streams.derived.STATE_EVENTS`): the newer carries the whole current figure;
- every other event is discrete: it waits its turn, in order, and is never dropped;
- a message that failed and will be retried holds its channel back alone, longer after each
  failure (`retry`): one failing channel does not slow the others.

A channel's backlog is bounded by the publisher (`crowded`): the partitions that feed a channel
with more than `BACKLOG_SECONDS` of its rate waiting are not read until it drains, so what was
read and not yet sent stays well inside the two minutes in which Ably drops a repeated id.

It also knows which offsets of the derived topic are done (delivered, dead-lettered or
superseded), so the publisher commits exactly those: a restarted publisher sends again at most
what was not done, with the same ids, which Ably drops.

Pure bookkeeping, no I/O: the publisher (`streams.agents.publisher`) does the sending.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from streams.derived import state_subject

__all__ = ["Entry", "Outbox"]

WINDOW = 1.0  # seconds: Ably's per-channel rate is per second
BACKLOG_SECONDS = 60  # of a channel's rate, waiting at most (Ably's de-duplication: 2 minutes)
FIRST_BACKOFF, MAX_BACKOFF = 0.25, 30.0  # seconds a failed message holds its channel


@dataclass(eq=False, slots=True)
class Entry:
    event: dict[str, Any]
    partition: Hashable
    offset: int
    seq: int
    supersedes_key: tuple[Any, ...] | None
    received_at: int | None = None  # when its webhook was received (ms), if it comes from one
    sending: bool = False


class Outbox:
    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate < 1:
            raise ValueError(f"a channel's rate must be at least 1 message a second, got {rate}")
        self.rate, self.clock = rate, clock
        self.queues: dict[str, dict[int, Entry]] = {}  # channel -> its entries, oldest first
        self.waiting_state: dict[tuple[Any, ...], int] = {}  # (channel, name, subject) -> seq
        self.acks: dict[str, deque[float]] = {}  # channel -> when its last `rate` were acked
        self.backoff: dict[str, tuple[float, float]] = {}  # channel -> (held until, next delay)
        self.feeding: dict[str, Counter[Hashable]] = {}  # channel -> its entries' partitions
        self.open: dict[Hashable, dict[int, None]] = {}  # partition -> offsets not done, in order
        self.fetched: dict[Hashable, int] = {}  # partition -> the offset after the last added
        self.superseded = 0
        self._pruned = clock()
        self._seq = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(
        self,
        event: dict[str, Any],
        partition: Hashable,
        offset: int,
        received_at: int | None = None,
    ) -> None:
        """An event read from the derived topic, in offset order per partition."""
        self.fetched[partition] = offset + 1
        channel = event["channel"]
        queue = self.queues.setdefault(channel, {})
        subject = state_subject(event)
        key = None if subject is None else (channel, event["name"], subject)
        entry = Entry(event, partition, offset, next(self._seq), key, received_at)
        if key is not None:
            older = self.waiting_state.get(key)
            if older is not None:
                self._done(queue.pop(older))
                self.superseded += 1
            self.waiting_state[key] = entry.seq
        queue[entry.seq] = entry
        self.feeding.setdefault(channel, Counter())[partition] += 1
        self.open.setdefault(partition, {})[offset] = None
        self._size += 1

    def round(self, limit: int) -> list[Entry]:
        """The next message of each channel that may send now, at most `limit` channels; the
        channels served go to the back of the line."""
        now = self.clock()
        if now - self._pruned >= WINDOW:
            self._prune(now)
        out: list[Entry] = []
        for channel, queue in self.queues.items():
            if len(out) == limit:
                break
            head = next(iter(queue.values()))
            if head.sending or self._held(channel, now) > 0:
                continue
            head.sending = True
            key = head.supersedes_key
            if key is not None and self.waiting_state.get(key) == head.seq:
                del self.waiting_state[key]  # on its way: no longer replaceable
            out.append(head)
        for entry in out:
            channel = entry.event["channel"]
            self.queues[channel] = self.queues.pop(channel)
        return out

    def delivered(self, entry: Entry) -> None:
        """Ably took it: it counts against its channel's rate from now."""
        channel = entry.event["channel"]
        self.acks.setdefault(channel, deque(maxlen=self.rate)).append(self.clock())
        self.backoff.pop(channel, None)
        self._finish(entry)

    def refused(self, entry: Entry) -> None:
        """Ably refused it for good (it went to the dead letters)."""
        self._finish(entry)

    def retry(self, entry: Entry) -> None:
        """It failed and will be sent again, still first on its channel, after a delay that
        doubles with each failure in a row (up to `MAX_BACKOFF`)."""
        entry.sending = False
        channel = entry.event["channel"]
        _, delay = self.backoff.get(channel, (0.0, FIRST_BACKOFF))
        self.backoff[channel] = (self.clock() + delay, min(delay * 2, MAX_BACKOFF))

    def crowded(self) -> set[Hashable]:
        """The partitions feeding a channel with more than `BACKLOG_SECONDS` of its rate
        waiting: not to be read until it drains."""
        limit = self.rate * BACKLOG_SECONDS
        return {
            partition
            for channel, queue in self.queues.items()
            if len(queue) > limit
            for partition in self.feeding[channel]
        }

    def wait(self) -> float | None:
        """Seconds until a channel may send (0: now); None when nothing waits."""
        now = self.clock()
        soonest = None
        for channel, queue in self.queues.items():
            if next(iter(queue.values())).sending:
                continue
            held = self._held(channel, now)
            if held <= 0:
                return 0.0
            soonest = held if soonest is None else min(soonest, held)
        return soonest

    def done_offsets(self) -> dict[Hashable, int]:
        """Per partition, the offset to commit: the first not done, else the next to read."""
        return {
            partition: next(iter(self.open.get(partition, ())), end)
            for partition, end in self.fetched.items()
        }

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """Partitions handed to another publisher: their events are its to send."""
        gone = set(partitions)
        for channel in list(self.queues):
            queue = self.queues[channel]
            for seq, entry in list(queue.items()):
                if entry.partition in gone:
                    del queue[seq]
                    self._unfeed(entry)
                    self._size -= 1
                    key = entry.supersedes_key
                    if key is not None and self.waiting_state.get(key) == seq:
                        del self.waiting_state[key]
            if not queue:
                del self.queues[channel]
        for partition in gone:
            self.open.pop(partition, None)
            self.fetched.pop(partition, None)

    def _held(self, channel: str, now: float) -> float:
        """Seconds until the channel may send (0 or less: now)."""
        until = self.backoff[channel][0] - now if channel in self.backoff else 0.0
        acks = self.acks.get(channel)
        if acks is None or len(acks) < self.rate:
            return until
        return max(until, acks[0] + WINDOW - now)

    def _prune(self, now: float) -> None:
        """Forget the acks of idle channels whose window is over (there may be millions)."""
        self._pruned = now
        for channel in [c for c, acks in self.acks.items() if acks[-1] + WINDOW <= now]:
            if channel not in self.queues:
                del self.acks[channel]
        for channel in [c for c in self.backoff if c not in self.queues]:
            del self.backoff[channel]

    def _finish(self, entry: Entry) -> None:
        channel = entry.event["channel"]
        queue = self.queues[channel]
        del queue[entry.seq]
        if not queue:
            del self.queues[channel]
        self._done(entry)

    def _unfeed(self, entry: Entry) -> None:
        channel = entry.event["channel"]
        feeding = self.feeding[channel]
        feeding[entry.partition] -= 1
        if feeding[entry.partition] <= 0:
            del feeding[entry.partition]
            if not feeding:
                del self.feeding[channel]

    def _done(self, entry: Entry) -> None:
        self._unfeed(entry)
        self._size -= 1
        offsets = self.open.get(entry.partition)
        if offsets is not None:
            offsets.pop(entry.offset, None)
