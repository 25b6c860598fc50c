"""`streams.agents.effects` against a real broker that goes away: a commit and a recovery wait for
Kafka to come back instead of stopping the worker (CI once saw a worker stop because the broker
died just before the worker recovered its first partition)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from streams.agents.effects import Effects
from streams.agents.staged import Staged
from streams.broker import LocalKafka
from streams.settings import Settings
from streams.topics import DERIVED, ensure_topics

OUTAGE = 12.0  # seconds: longer than the effects' pause between two attempts


class Record:
    """What the agents hand over: Faust's event, with its message's partition and offset."""

    def __init__(self, partition: int, offset: int) -> None:
        self.message = SimpleNamespace(partition=partition, offset=offset)


async def no_flush() -> None:
    return None


def folded(tables: dict[str, dict[str, Any]], offset: int, revenue: int) -> dict[str, Staged]:
    """A batch of one record of partition 0 that sets a location's revenue."""
    staged = {name: Staged(table) for name, table in tables.items()}
    staged["revenue"].origin = Record(0, offset)
    staged["revenue"]["loc-a"] = {"days": {"2026-03-01": revenue}}
    return staged


async def test_commit_and_recovery_wait_for_a_restarted_broker(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka", libs=Settings.from_env({}).kafka_libs)
    kafka.start()
    effects: list[Effects] = []
    try:
        await kafka.wait_ready()
        await ensure_topics(kafka.bootstrap, partitions=2, replication_factor=1)

        def worker(tables: dict[str, dict[str, Any]]) -> Effects:
            effects.append(Effects(kafka.bootstrap, DERIVED.name, tables, no_flush, patience=120))
            return effects[-1]

        live: dict[str, dict[str, Any]] = {"revenue": {}}
        writer = worker(live)
        event = {"id": "e1", "channel": "location:loc-a", "name": "revenue-changed"}
        await writer.commit(folded(live, 0, 500), {0: [event]})

        # A worker's first commit while the only broker is down (its producer cannot even
        # start) waits for it.
        kafka.stop_node(1, kill=True)
        restarted = worker(live)
        commit = asyncio.create_task(restarted.commit(folded(live, 1, 700), {0: []}))
        await asyncio.sleep(OUTAGE)
        assert not commit.done(), commit
        kafka.start_node(1)
        await kafka.wait_ready()
        await asyncio.wait_for(commit, 120)
        assert live == {"revenue": {"loc-a": {"days": {"2026-03-01": 700}}}}

        # So does a worker taking partition 0 over while the broker is down: once it is back,
        # it applies the last commit's writes (revenue 700), not the first's.
        kafka.stop_node(1, kill=True)
        successor: dict[str, dict[str, Any]] = {"revenue": {}}
        recovery = asyncio.create_task(worker(successor).recover([Record(0, 2)]))
        await asyncio.sleep(OUTAGE)
        assert not recovery.done(), recovery
        kafka.start_node(1)
        await kafka.wait_ready()
        await asyncio.wait_for(recovery, 120)
        assert successor == live
    finally:
        for each in effects:
            await each.stop()
        kafka.stop()
