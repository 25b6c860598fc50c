"""Standby copies: stores of partitions another worker owns, kept current from the changelog.

When the owner dies its partitions come here with little to restore (the placement prefers the
standby holder), and until the group moves them, queries are answered from this copy
(`Streams-Answered-By: standby`). A store is open either as a standby or in a task, never both:
the loop releases the standby before its task opens the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.runtime.changelog import apply_records, reader, stale
from streams.runtime.state import PartitionState
from streams.runtime.store import Store
from streams.runtime.task import TaskConfig

__all__ = ["Standby"]

log = logging.getLogger(__name__)


class Standby:
    def __init__(self, config: TaskConfig) -> None:
        self.config = config
        self.consumer: AIOKafkaConsumer | None = None  # made in the running event loop
        self.stores: dict[int, Store] = {}
        self.views: dict[int, Mapping[str, Any]] = {}
        self.ready: set[int] = set()  # caught up with the changelog once
        self._ends: dict[int, int] = {}  # the changelog's end when following began
        self._lock = asyncio.Lock()

    def tables(self, partition: int) -> Mapping[str, Any] | None:
        return self.views.get(partition) if partition in self.ready else None

    async def follow(self, partitions: Iterable[int]) -> None:
        """Keep exactly these partitions as standbys."""
        wanted = set(partitions)
        async with self._lock:
            if self.consumer is None:
                consumer = reader(self.config.bootstrap)
                await consumer.start()  # kept only once started: a failed start is tried again
                self.consumer = consumer
            for p in set(self.stores) - wanted:
                self._close(p)
            for p in wanted - set(self.stores):
                store = Store(self.config.store_path(p))
                self.stores[p] = store
                self.views[p] = PartitionState(store, self.config.tables).tables
            tps = {p: TopicPartition(self.config.changelog_topic, p) for p in self.stores}
            self.consumer.assign(list(tps.values()))
            if not tps:
                return
            firsts = await self.consumer.beginning_offsets(list(tps.values()))
            ends = await self.consumer.end_offsets(list(tps.values()))
            for p, tp in tps.items():
                start = self.stores[p].checkpoint
                if start is None or stale(self.stores[p], firsts[tp], ends[tp]):
                    self.ready.discard(p)  # no answers from it until it has caught up again
                    self.stores[p].reset()  # no checkpoint, or one the changelog cannot go on from
                    self.stores[p].write((), firsts[tp])  # from the start, now (`restore`)
                    start = firsts[tp]
                self.consumer.seek(tp, start)
                if start >= ends[tp]:
                    self.ready.add(p)
            self._ends = {p: ends[tp] for p, tp in tps.items()}

    async def release(self, partition: int) -> None:
        """Close the standby store of a partition this worker now owns."""
        async with self._lock:
            if partition in self.stores and self.consumer is not None:
                self._close(partition)
                tps = [TopicPartition(self.config.changelog_topic, p) for p in self.stores]
                self.consumer.assign(tps)
                for p, tp in zip(self.stores, tps, strict=True):
                    if self.stores[p].checkpoint is not None:
                        self.consumer.seek(tp, self.stores[p].checkpoint)

    async def run(self) -> None:
        while True:
            if not self.stores or self.consumer is None:
                await asyncio.sleep(0.5)
                continue
            try:
                fetched = await self.consumer.getmany(timeout_ms=500, max_records=10_000)
            except (KafkaError, AssertionError, RuntimeError) as exc:
                # Assignments change under the fetch (follow/release): fetch again.
                log.debug("standby fetch: %r", exc)
                await asyncio.sleep(0.1)
                continue
            async with self._lock:
                for tp, records in fetched.items():
                    store = self.stores.get(tp.partition)
                    if store is None or not records:
                        continue
                    apply_records(store, records)
                    if records[-1].offset + 1 >= self._ends.get(tp.partition, 0):
                        self.ready.add(tp.partition)

    def _close(self, partition: int) -> None:
        self.ready.discard(partition)
        self.views.pop(partition, None)
        self.stores.pop(partition).close()

    async def stop(self) -> None:
        async with self._lock:
            for p in list(self.stores):
                self._close(p)
            if self.consumer is not None:
                await self.consumer.stop()
