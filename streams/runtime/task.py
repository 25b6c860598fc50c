"""A task: one owned input partition, with its store and its tables (Kafka Streams' `StreamTask`).

Taking a partition (`Loop._open`), in this order:
1. Wait until the partition's changelog holds no open transaction: the previous owner's last
   commit is either visible or aborted.
2. Restore the store from the changelog, from its checkpoint to the end (committed records).
3. Read the position the restored state has folded up to (`Store.position`, committed with the
   state); the loop seeks there and resumes the partition.

A round folds its records into the state's in-memory changes (`fold`), its new position among
them. The loop then commits every task's changes, derived events and dead letters in one
transaction (`seal`), and each task writes its store once per changed key with the new
checkpoint (`stored`). The next round folds while that commit is in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.agents.family import Family, Processor
from streams.events import received_at_header
from streams.runtime.changelog import StaleCheckpoint, restore
from streams.runtime.state import PartitionState
from streams.runtime.store import POSITION, Store
from streams.runtime.transaction import Batch, Effects

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
        self.effects = Effects()
        self.position = 0  # the next offset of the source partition to fold
        self.last_received: int | None = None  # the newest record folded: its received-at (ms)

    async def restore(self, reader: AIOKafkaConsumer) -> None:
        """Step 2: the store up to the end of its changelog (from scratch when the changelog
        cannot bring it up to date from its checkpoint: `changelog.stale`)."""
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

    def report_position(self) -> None:
        """Commit the position in the next round, even if nothing is folded meanwhile."""
        self.state.put(POSITION, self.position)

    def seal(self) -> Batch:
        """What is folded, set aside for the round's commit; folding goes on meanwhile. The
        position is always among the changes: a transaction that commits a partition's offset
        writes to its changelog too, which a new owner waits on (`changelog.settled`)."""
        self.report_position()
        effects, self.effects = self.effects, Effects()
        return Batch(self.partition, self.state.seal(), effects, self.position)

    def stored(self, batch: Batch, checkpoint: int | None) -> None:
        """The round committed: write its changes to the store, at `checkpoint`."""
        self.store.write(batch.changes, checkpoint)
        self.state.sealed_stored()

    def discard(self) -> None:
        """Forget what is not committed (its records are read again from the committed position)."""
        self.state.discard()
        self.effects = Effects()

    def close(self) -> None:
        self.discard()
        self.store.close()
