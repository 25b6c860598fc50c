"""A task: one owned input partition, with its store, its tables and its transactional producer
(Kafka Streams' `StreamTask`).

Taking a partition (`Task.open`), in this order:
1. Start the partition's transactional producer: this fences the previous owner and ends its
   open transaction, so the changelog and the committed offset stop moving.
2. Restore the store from the changelog, from its checkpoint to the end (committed records).
3. Read the position the restored state has folded up to (`Store.position`, committed with the
   state); the loop seeks there and resumes the partition.

A batch folds its records into the state's in-memory changes (`fold`), its new position among
them, then commits them with its derived events and dead letters in one transaction, then writes
the store once per changed key with the new checkpoint (`commit_soon`), and tells the loop the
position it committed (for the group's offsets). The next batch folds while that commit is
in flight, and is committed when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams import metrics
from streams.agents.family import Family, Processor
from streams.events import received_at_header
from streams.runtime.changelog import StaleCheckpoint, restore
from streams.runtime.state import PartitionState
from streams.runtime.store import POSITION, Store
from streams.runtime.transaction import Effects, Transaction

__all__ = ["Task", "TaskConfig"]

log = logging.getLogger(__name__)


class TaskConfig:
    """What every task of a loop shares."""

    def __init__(
        self,
        *,
        bootstrap: str,
        group: str,
        source_topic: str,
        changelog_topic: str,
        derived_topic: str,
        dead_letter_topic: str,
        data_dir: Path,
        tables: Sequence[str],
        families: Sequence[Family],
        live: bool,
        label: str,
    ) -> None:
        self.bootstrap, self.group = bootstrap, group
        self.source_topic, self.changelog_topic = source_topic, changelog_topic
        self.derived_topic, self.dead_letter_topic = derived_topic, dead_letter_topic
        self.data_dir, self.tables, self.families = data_dir, tuple(tables), list(families)
        self.live, self.label = live, label

    def store_path(self, partition: int) -> Path:
        return self.data_dir / f"partition-{partition}"


class Task:
    def __init__(self, config: TaskConfig, partition: int, store: Store) -> None:
        self.config, self.partition = config, partition
        self.source = TopicPartition(config.source_topic, partition)
        self.changelog = TopicPartition(config.changelog_topic, partition)
        self.store = store
        self.state = PartitionState(store, config.tables)
        self.processor = Processor(
            config.families, self.state, live=config.live, label=config.label
        )
        self.transaction = Transaction(
            config.bootstrap,
            config.group,
            self.source,
            self.changelog,
            config.derived_topic,
            config.dead_letter_topic,
        )
        self.effects = Effects()
        self.position = 0  # the next offset of the source partition to fold
        self.last_received: int | None = None  # the newest record folded: its received-at (ms)
        self.committer: asyncio.Task[None] | None = None
        self.halted = False  # the worker is stopping after a fault: commit nothing more

    async def fence(self) -> None:
        """Step 1 of taking the partition: start its transactional producer."""
        await self.transaction.start()

    async def restore(self, reader: AIOKafkaConsumer) -> None:
        """Step 2: the store up to the end of its changelog (from scratch when its checkpoint is
        not in the changelog: the topic was recreated)."""
        try:
            await restore(reader, self.store, self.changelog)
        except StaleCheckpoint:
            self.store.reset()
            await restore(reader, self.store, self.changelog)

    def committed_tables(self) -> Any:
        """The tables as committed (what queries read): the store without the batch's changes."""
        return PartitionState(self.store, self.config.tables).tables

    def fold(self, records: Sequence[Any]) -> None:
        self.processor.process(records, self.effects)
        self.position = records[-1].offset + 1
        self.state.put(POSITION, self.position)  # committed with the state it reached
        # For system health (a bad header is the families' to dead-letter).
        self.last_received = received_at_header(records[-1].headers) or self.last_received

    def tick(self, fire: Callable[[Any, int, int], Iterable[dict[str, Any]]]) -> None:
        """Fold something that is not a record (the reminders' clock) into the batch."""
        derived = self.state.apply(
            lambda tables: list(fire(tables, self.partition, self.position)), self.state.tables
        )
        self.effects.derive(derived, None)

    @property
    def dirty(self) -> bool:
        return bool(self.state.changes or self.effects)

    def commit_soon(
        self,
        failed: Callable[[Task, BaseException], None],
        committed: Callable[[Task, int], None],
    ) -> None:
        """Commit what has been folded, unless a commit is in flight: that one commits the
        rest when it is done. Nothing waits on a timer: a commit starts as soon as there is
        something to commit and the previous one is done, so batches grow with the load."""
        if self.committer is None and self.dirty and not self.halted:
            self.committer = asyncio.ensure_future(self._commit_while_dirty(failed, committed))

    async def _commit_while_dirty(
        self,
        failed: Callable[[Task, BaseException], None],
        committed: Callable[[Task, int], None],
    ) -> None:
        try:
            while self.dirty and not self.halted:
                offset = self.state.changes.get(POSITION)  # None: only a tick's effects
                changes = self.state.seal()
                effects, self.effects = self.effects, Effects()
                started = time.perf_counter()
                checkpoint = await self.transaction.commit(changes, effects)
                metrics.observe("streams_commit_seconds", time.perf_counter() - started)
                self.store.write(changes, checkpoint)
                self.state.sealed_stored()
                if offset is not None:
                    committed(self, offset)
        except Exception as exc:
            failed(self, exc)
        finally:
            self.committer = None

    async def settle(self) -> None:
        """Until the commits in flight (and what was folded meanwhile) are done."""
        committer = self.committer
        if committer is not None:
            await asyncio.shield(committer)

    def discard(self) -> None:
        """Forget what is not committed (its records are read again from the committed position)."""
        self.state.discard()
        self.effects = Effects()

    async def close(self) -> None:
        committer = self.committer
        if committer is not None:  # a worker stopping after a fault: nothing more is committed
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
        self.discard()
        self.store.close()  # first: the partition may be opened again while the producer stops
        await self.transaction.stop()
