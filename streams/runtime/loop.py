"""The loop of one group member: poll, fold, commit (Kafka Streams' `StreamThread`).

Each round takes what has arrived (`getmany`, at most `max_records`, fewer while a partition
has just begun opening; returning at once when records are ready: a lone record starts at once,
a backlog moves in large batches), folds each partition's records in its task, and starts the
commit of every partition that changed, all in one transaction, without waiting for it: the next
round folds while that commit is in flight, and what was folded meanwhile is committed as soon
as it is done. aiokafka keeps fetching in the background. A tick (the reminders' clock) is
folded into the round when it is due.

Rebalances: a partition taken is paused until its task is open (its changelog settled,
restored, sought to the position its state was committed with); a partition revoked first lets
the commit in flight finish, then its task closes. Failures: when a commit fails on Kafka
(fenced, unreachable), every task is opened again from its committed state, with patience; past
it, or on an error that is not a record's content (a bug in a fold), nothing more is committed,
the loop raises and the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from streams import metrics
from streams.errors import StreamsError
from streams.runtime.changelog import reader, settled
from streams.runtime.fencing import consumer_member
from streams.runtime.ownership import Assignor, Placement, lasting_name, leave_when_stopped
from streams.runtime.standby import Standby
from streams.runtime.store import Store
from streams.runtime.task import Task, TaskConfig
from streams.runtime.transaction import PartitionsLost, Transaction
from streams.topics import ensure_changelog

__all__ = ["MAX_RECORDS", "Loop", "StopWorker"]

log = logging.getLogger(__name__)

MAX_RECORDS = 10_000  # records per round, all partitions together
# A round folds without awaiting, and an aiokafka request takes about seven turns of the event
# loop, so a partition being opened (its producer, its restore: a few requests) got a turn only
# between rounds: the 2nd to 4th partitions of a worker started on a backlog opened 1.2 to 2.7 s
# after the first. For the first seconds of an opening, each round first leaves the loop to it
# for up to OPENING_TURN_S and folds fewer records; an opening that takes longer (a large
# restore, Kafka unreachable) no longer holds the open partitions back.
OPENING_TURN_S = 0.05
OPENING_MAX_RECORDS = 1_000
OPENING_TURNS_FOR_S = 2.0
IDLE_MS = 100  # how long a round waits when nothing has arrived (records end the wait at once)
PATIENCE = 300.0  # seconds a partition keeps trying to reach Kafka before the worker stops
RETRY_PAUSE = 1.0
# Commit failures in a row, over the patience, that stop the worker: a few far apart on a
# quiet worker (a rolling restart of the brokers) are weather still.
FAILURES_TO_STOP = 5

# Python collects young objects every 700 net allocations by default, and walks older ones every
# 10th and 100th time: a worker folding allocates millions of short-lived objects beside a large
# live heap (records, decoded bodies, the batch's changes), which cost 0.7 s of collections per
# 100,000 records on the bench mix; 0.2 s with these.
GC_THRESHOLDS = (50_000, 50, 100)

# (a partition's tables, the partition, its position in the source) -> derived events
Tick = Callable[[Any, int, int], Iterable[dict[str, Any]]]


class StopWorker(StreamsError, RuntimeError):
    """The worker must stop without committing (its supervisor restarts it)."""


class Loop(ConsumerRebalanceListener):
    def __init__(
        self,
        config: TaskConfig,
        placement: Placement,
        *,
        replication_factor: int = 1,
        standbys: int = 1,
        tick: Tick | None = None,
        tick_seconds: float = 1.0,
        max_records: int = MAX_RECORDS,
        patience: float = PATIENCE,
        instance_id: str | None = None,
        leave_on_stop: bool = False,
    ) -> None:
        """`instance_id`: a static group membership (KIP-345) that outlives the process: a worker
        restarted with it takes its partitions back at once, with no rebalance; None for a
        dynamic member, which leaves the group when it stops. `leave_on_stop`: a static member
        that is stopped (cancelled) leaves too, so its partitions move at once instead of after
        its session times out; one stopping on a fault stays, to be restarted. Set it off before
        cancelling to stop without leaving."""
        self.config, self.placement = config, placement
        self.replication_factor = replication_factor
        self.tick, self.tick_seconds, self.max_records = tick, tick_seconds, max_records
        self.patience, self.standbys, self.instance_id = patience, standbys, instance_id
        # The worker's lasting name (its static member id; a dynamic member's is kept in its
        # data directory too): a restart ends the transaction its kill left open.
        self.transactional_id = instance_id or lasting_name(config.data_dir, config.group)
        self.leave_on_stop = leave_on_stop
        self.tasks: dict[int, Task] = {}
        self.assigned: set[int] = set()
        self.joined = False
        self.fatal: BaseException | None = None  # set when the worker must stop
        self.halted = False  # the worker is stopping after a fault: commit nothing more
        self.stopping = False  # _stop() has begun: nothing more is opened
        self.committer: asyncio.Task[None] | None = None  # the round's commit in flight
        # Commit failures in a row (none more than PATIENCE apart, no success between): when
        # the first and the last of them, by `clock`, and how many.
        self._failing: tuple[float, float, int] | None = None
        self.clock = time.monotonic
        self._jobs: set[asyncio.Task[None]] = set()
        self.restoring = asyncio.Lock()
        self.standby = Standby(config)
        self.opening: dict[int, asyncio.Task[None]] = {}
        self._opening_since: dict[int, float] = {}  # monotonic time each opening began
        self._next_tick = 0.0
        self.transaction: Transaction | None = None  # made by run(): aiokafka's loop
        self._producer = asyncio.Lock()  # one (re)start of the producer at a time
        placement.local = self.tables

    # -- what the web side reads ------------------------------------------------------------

    def tables(self, partition: int) -> Mapping[str, Any] | None:
        task = self.tasks.get(partition)
        if task is not None:
            return task.committed_tables()
        return self.standby.tables(partition)

    def lag(self) -> dict[int, int]:
        """Records of each open partition not folded yet, as of the last fetch."""
        out = {}
        for partition, task in self.tasks.items():  # tasks exist once run() made the consumer
            end = self.consumer.highwater(task.source)
            if end is not None:
                out[partition] = max(0, end - task.position)
        return out

    def last_received(self) -> int | None:
        """When the newest record folded here reached the ingress (ms), if known."""
        return max((t.last_received for t in self.tasks.values() if t.last_received), default=None)

    def status(self) -> str:
        if not self.joined:
            return "starting"
        return "ok" if self.assigned <= set(self.tasks) else "rebalancing"

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled; raises `StopWorker` when the worker must stop."""
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()  # what start-up made (modules, settings) lives as long as the process
        # aiokafka's clients belong to the running event loop: made here, not in __init__.
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.config.bootstrap,
            group_id=self.config.group,
            group_instance_id=self.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(
                Assignor(self.placement, self.config.source_topic, self.standbys),
            ),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
        )
        self.reader = reader(self.config.bootstrap)  # restores, one partition at a time
        await ensure_changelog(
            self.config.bootstrap,
            self.config.changelog_topic,
            source=self.config.source_topic,
            replication_factor=self.replication_factor,
        )
        await self.reader.start()
        # Before joining: starting the producer ends this worker's transaction a kill left open.
        await self._start_producer()
        self.consumer.subscribe([self.config.source_topic], listener=self)
        await self.consumer.start()
        standby = asyncio.ensure_future(self.standby.run())
        standby.add_done_callback(self._standby_ended)
        stopped = False  # by its owner (a signal), not by a fault
        try:
            while self.fatal is None:
                max_records = self.max_records
                opening = self._recent_openings()
                if opening:
                    await asyncio.wait(opening, timeout=OPENING_TURN_S)
                    max_records = min(max_records, OPENING_MAX_RECORDS)
                fetched = await self.consumer.getmany(timeout_ms=IDLE_MS, max_records=max_records)
                if self.fatal is not None:
                    break
                try:
                    self._round(fetched)
                except BaseException as exc:  # a bug in a fold: nothing half-folded is committed
                    self._halt(exc)
                    raise
            raise StopWorker(str(self.fatal)) from self.fatal
        except asyncio.CancelledError:
            stopped = True
            raise
        finally:
            standby.cancel()
            await self._stop(leave=stopped and self.leave_on_stop and self.fatal is None)

    def _recent_openings(self) -> list[asyncio.Task[None]]:
        """The openings under way that began less than OPENING_TURNS_FOR_S ago."""
        since = time.monotonic() - OPENING_TURNS_FOR_S
        return [
            opening
            for partition, opening in self.opening.items()
            if not opening.done() and self._opening_since.get(partition, 0.0) > since
        ]

    def _round(self, fetched: Mapping[TopicPartition, list[Any]]) -> None:
        """Fold what arrived and start the commits; no await between the fetch and the folds,
        so a rebalance cannot slip records of a partition into a task that does not own them."""
        for tp, records in fetched.items():
            task = self.tasks.get(tp.partition)
            if task is not None and records:
                task.fold(records)
        if self.tick is not None and time.monotonic() >= self._next_tick:
            self._next_tick = time.monotonic() + self.tick_seconds
            for task in self.tasks.values():
                try:
                    task.tick(self.tick)
                except Exception:  # a tick carries nothing: the next one tries again
                    log.exception("partition %d: tick failed", task.partition)
        self._commit_soon()

    def _halt(self, exc: BaseException) -> None:
        """The worker must stop: nothing more is committed."""
        self.fatal = self.fatal or exc
        self.halted = True

    def _standby_ended(self, standby: asyncio.Future[None]) -> None:
        if not standby.cancelled() and standby.exception() is not None:
            log.error("standby copies stopped: %r", standby.exception())
            self._halt(standby.exception() or RuntimeError("standby"))

    # -- commits -------------------------------------------------------------------------------

    def _commit_soon(self) -> None:
        """Commit what has been folded, unless a commit is in flight: that one commits the rest
        when it is done. Nothing waits on a timer: a commit starts as soon as there is something
        to commit and the previous one is done, so batches grow with the load."""
        if self.committer is None and not self.halted and self._dirty():
            self.committer = asyncio.ensure_future(self._commit_while_dirty())

    def _dirty(self) -> list[Task]:
        return [task for task in self.tasks.values() if task.dirty]

    async def _commit_while_dirty(self) -> None:
        try:
            while not self.halted and (dirty := self._dirty()):
                transaction = self.transaction
                if transaction is None:  # being replaced after a failure: the tasks reopen then
                    return
                try:
                    batches = [task.seal() for task in dirty]
                    started = time.perf_counter()
                    checkpoints = await transaction.commit(batches)
                    metrics.observe("streams_commit_seconds", time.perf_counter() - started)
                    for task, batch in zip(dirty, batches, strict=True):
                        task.stored(batch, checkpoints.get(task.partition))
                    self._failing = None
                except Exception as exc:  # nothing sealed is committed or stored twice: reopen
                    self._commit_failed(exc)
                    return
        finally:
            self.committer = None

    async def _settle(self) -> None:
        """Until no commit is in flight: the one now, and any a round started (a tick, say)
        before this caller was resumed, so nothing commits for a store about to be closed."""
        while (committer := self.committer) is not None and not committer.done():
            await asyncio.shield(committer)

    def _commit_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, PartitionsLost | KafkaError | TimeoutError | OSError):
            self._halt(exc)  # a bug, not the weather: stop without committing anything more
            return
        now = self.clock()
        if self._failing is None or now - self._failing[1] > self.patience:
            self._failing = (now, now, 1)  # the first of a run of failures
        else:
            self._failing = (self._failing[0], now, self._failing[2] + 1)
        first, _, failures = self._failing
        if failures >= FAILURES_TO_STOP and now - first > self.patience:
            # Not weather that passes: Kafka refuses every commit (a record it will not take,
            # a topic it does not let this worker write...). Stop and say so, not reopen forever.
            self._halt(
                StopWorker(f"every commit failed for {self.patience:.0f}s, the last: {exc!r}")
            )
            return
        # Nothing more is folded from now on: every task's records are read again when reopened.
        log.warning("commit failed (%r); reopening every partition", exc)
        tasks, self.tasks = self.tasks, {}
        for task in tasks.values():
            if task.source in self.consumer.assignment():
                self.consumer.pause(task.source)
        self.transaction, transaction = None, self.transaction
        # Fenced: the group moved on without this worker (the next rebalance says how), or
        # the coordinator aborted a transaction that outlived its timeout. A new producer and
        # reopening tell the two apart: a rebalance moves the partitions no longer ours.
        self._spawn(self._recover(tasks.values(), transaction))

    async def _recover(self, tasks: Iterable[Task], transaction: Transaction | None) -> None:
        try:
            for task in tasks:
                task.close()
            if transaction is not None:
                await transaction.stop()
            if self.stopping:  # a restart (the same transactional id) ends what is left open
                return
            # At once, whatever is assigned: a new producer of the same transactional id ends
            # the transaction the failure left open, which else holds every reader of the
            # partitions it touched (and their next owner) until it times out.
            await self._start_producer()
            for partition in sorted(self.assigned):
                self._open_later(partition)  # not those opened meanwhile
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # nothing reopens the partitions: the worker must stop
            self._halt(exc)

    async def _start_producer(self) -> None:
        """The worker's transactional producer, (re)started with patience."""
        async with self._producer:
            if self.transaction is not None:
                return
            deadline = time.monotonic() + self.patience
            while True:
                transaction = Transaction(
                    self.config.bootstrap,
                    group=self.config.group,
                    transactional_id=self.transactional_id,
                    source_topic=self.config.source_topic,
                    changelog_topic=self.config.changelog_topic,
                    derived_topic=self.config.derived_topic,
                    dead_letter_topic=self.config.dead_letter_topic,
                )
                try:
                    await transaction.start(consumer_member(self.consumer))
                    self.transaction = transaction
                    return
                except (KafkaError, TimeoutError, OSError) as exc:
                    if time.monotonic() > deadline:
                        raise StopWorker(f"Kafka unreachable: {exc!r}") from exc
                    log.warning("producer not started (%r); trying again", exc)
                    await asyncio.sleep(RETRY_PAUSE)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.ensure_future(work)
        self._jobs.add(job)  # referenced until done: the event loop keeps only weak ones
        job.add_done_callback(self._jobs.discard)

    async def _stop(self, leave: bool) -> None:
        self.stopping = True  # a failing commit's recovery opens nothing more
        for opening in self.opening.values():
            opening.cancel()
        if self.fatal is None:
            await self._settle()
        elif self.committer is not None:  # stopping after a fault: nothing more is committed
            self.committer.cancel()
        for p in list(self.tasks):
            self._drop(p)
        for job in [*self._jobs, *self.opening.values()]:
            with contextlib.suppress(BaseException):
                await job
        await self.standby.stop()
        if self.transaction is not None:
            await self.transaction.stop()
        if leave:
            leave_when_stopped(self.consumer)
        await self.consumer.stop()
        await self.reader.stop()

    # -- rebalances (aiokafka calls these) -----------------------------------------------------

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        partitions = {tp.partition for tp in revoked}
        self.assigned -= partitions  # a failing commit must not reopen them now
        try:
            for partition in partitions:
                opening = self.opening.pop(partition, None)
                if opening is not None:
                    opening.cancel()
                    # Until it has ended (its store closed before the partition can come back);
                    # `wait`, not `await`: its cancellation is not this callback's.
                    await asyncio.wait([opening])
            await self._settle()  # the last round is committed before they are handed over
        finally:
            for partition in partitions:
                self._drop(partition)
            self.assigned.clear()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = {tp.partition for tp in assigned}
        self.assigned = partitions
        self.joined = True
        for p in partitions:
            self.consumer.pause(TopicPartition(self.config.source_topic, p))
            self._open_later(p)
        try:
            await self.standby.follow(self.placement.my_standbys() - partitions)
        except KafkaError as exc:  # standbys are a convenience: the next rebalance tries again
            log.warning("standby copies not followed: %r", exc)
        log.info(
            "assigned partitions %s; standby copies of %s",
            sorted(partitions),
            sorted(self.placement.my_standbys() - partitions),
        )

    def _open_later(self, partition: int) -> None:
        if self.stopping or partition in self.tasks:
            return
        current = self.opening.get(partition)
        if current is not None and not current.done():
            return  # one opening at a time: two would contend for the store's lock
        self.opening[partition] = asyncio.ensure_future(self._open_or_stop(partition))
        self._opening_since[partition] = time.monotonic()

    async def _open_or_stop(self, partition: int) -> None:
        try:
            await self._open(partition)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the loop raises it: a partition must not stay paused
            self._halt(exc)

    async def _open(self, partition: int) -> None:
        tp = TopicPartition(self.config.source_topic, partition)
        deadline = time.monotonic() + self.patience
        while True:
            # A no-op, unless a recovery is replacing the producer: the new one ends this
            # worker's own open transaction, which would else hold the changelog's settling.
            await self._start_producer()
            await self.standby.release(partition)
            task = Task(self.config, partition, Store(self.config.store_path(partition)))
            try:
                await settled(self.reader, self.consumer, task.changelog, deadline)
                async with self.restoring:
                    await task.restore(self.reader)
                committed = await self.consumer.committed(tp)  # older workers' only record
                break
            except (KafkaError, TimeoutError, OSError) as exc:
                task.close()
                if time.monotonic() > deadline:
                    raise StopWorker(f"partition {partition} not opened: {exc!r}") from exc
                log.warning("partition %d: opening failed (%r); trying again", partition, exc)
                await asyncio.sleep(RETRY_PAUSE)
            except BaseException:
                task.close()
                raise
        if partition not in self.assigned:  # revoked meanwhile
            task.close()
            return
        # The restored state says how far it has folded; a group offset beyond it was committed
        # with its state in the transaction by a worker of an earlier version.
        restored = task.store.position
        position = max((p for p in (restored, committed) if p is not None), default=0)
        if restored is not None and position > restored:
            log.warning(
                "partition %d: the group's offset %d is ahead of the state's position %d "
                "(committed by an earlier version, or moved): resuming from the group's",
                partition,
                position,
                restored,
            )
        self.consumer.seek(tp, position)
        task.position = position
        self.tasks[partition] = task
        self.opening.pop(partition, None)
        self.consumer.resume(tp)
        if position > (committed or 0):  # committed by an earlier version, without the group's
            task.report_position()
            self._commit_soon()
        log.info("partition %d ready at offset %s", partition, position)

    def _drop(self, partition: int) -> None:
        task = self.tasks.pop(partition, None)
        if task is not None:
            if task.source in self.consumer.assignment():
                self.consumer.pause(task.source)  # until it is open again
            task.close()
