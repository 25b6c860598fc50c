"""`Standby.follow` without Kafka: a fake changelog reader stands for aiokafka's consumer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from streams.runtime.standby import Standby
from streams.runtime.store import Store, store_key
from streams.topics import TOMBSTONES_KEPT_MS
from tests.unit.runtime.configs import task_config


class Changelog:
    """A reader of a changelog whose partitions span [first, end)."""

    def __init__(self, first: int, end: int, *, starts: bool = True) -> None:
        self.first, self.end, self.starts = first, end, starts
        self.seeks: dict[int, int] = {}

    async def start(self) -> None:
        if not self.starts:
            raise KafkaConnectionError("no broker")

    def assign(self, tps: list[TopicPartition]) -> None:
        return None

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.first for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.end for tp in tps}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp.partition] = offset

    async def stop(self) -> None:
        return None


def standby(tmp_path: Path) -> Standby:
    return Standby(task_config(tmp_path, tables=("t",)))


def readers(monkeypatch: pytest.MonkeyPatch, *made: Changelog) -> list[Changelog]:
    queue = list(made)

    def reader(bootstrap: str) -> Any:
        return queue.pop(0)

    monkeypatch.setattr("streams.runtime.standby.reader", reader)
    return queue


async def test_a_reader_that_failed_to_start_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    working = Changelog(0, 0)
    readers(monkeypatch, Changelog(0, 0, starts=False), working)
    copy = standby(tmp_path)
    with pytest.raises(KafkaConnectionError):
        await copy.follow([0])
    await copy.follow([0])  # the next assignment: a new reader, started
    assert copy.consumer is working
    assert copy.tables(0) is not None  # an empty changelog: caught up at once
    await copy.stop()


async def test_a_copy_whose_checkpoint_the_changelog_lacks_answers_nothing_until_caught_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changelog = Changelog(0, 0)
    readers(monkeypatch, changelog)
    copy = standby(tmp_path)
    await copy.follow([0])
    assert copy.tables(0) is not None
    copy.stores[0].write([(store_key("t", "a"), b"1", 1)], checkpoint=5)
    changelog.first, changelog.end = 10, 20  # compacted past it: restored from the start
    await copy.follow([0])
    assert changelog.seeks[0] == 10
    assert copy.stores[0].get(store_key("t", "a")) is None  # emptied
    assert copy.stores[0].checkpoint == 10  # to be read from the start
    assert copy.tables(0) is None  # and not answering from the empty store
    await copy.stop()


@pytest.mark.parametrize(("age_ms", "from_offset"), [(0, 5), (TOMBSTONES_KEPT_MS, 0)])
async def test_a_copy_left_longer_than_the_changelog_keeps_deletions_is_restored_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, age_ms: int, from_offset: int
) -> None:
    changelog = Changelog(0, 10)
    readers(monkeypatch, changelog)
    copy = standby(tmp_path)
    left = Store(copy.config.store_path(0))
    left.write([], 5, read_by=int(time.time() * 1000) - age_ms)
    left.close()
    await copy.follow([0])
    assert changelog.seeks[0] == from_offset  # a deletion since may be gone: from the start
    await copy.stop()
