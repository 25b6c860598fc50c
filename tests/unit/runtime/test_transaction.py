import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.structs import OffsetAndMetadata

from streams.runtime.transaction import (
    CONCURRENT_TRANSACTIONS_BACKOFF_S,
    Batch,
    Effects,
    Transaction,
)


async def test_a_transaction_retries_concurrent_transactions_in_milliseconds() -> None:
    # aiokafka's own wait is 20 ms for each commit that follows another at once.
    aiokafka_sender.BACKOFF_OVERRIDE = 0.02
    transaction = _transaction()
    assert aiokafka_sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_BACKOFF_S < 0.005
    await transaction.producer.stop()


def _transaction() -> Transaction:
    return Transaction(
        "localhost:1",
        group="g",
        transactional_id="g-w1",
        source_topic="raw",
        changelog_topic="g-changelog",
        derived_topic="derived",
        dead_letter_topic="dead",
    )


async def test_the_groups_offsets_join_the_transaction_while_its_records_are_in_flight() -> None:
    transaction = _transaction()
    manager = transaction.producer._txn_manager
    try:
        manager.set_pid_and_epoch(7, 0)
        manager.begin_transaction()
        changelog = TopicPartition("g-changelog", 0)
        manager.maybe_add_partition_to_txn(changelog)
        manager.join_group("g")
        # aiokafka's sender asks for the partitions first, then for the group: AddOffsetsToTxn
        # goes once the partitions are added, as their records go, before any offset is known.
        assert manager.partitions_to_add() == {changelog}
        manager.partition_added(changelog)
        assert manager.consumer_group_to_add() == "g"
        assert manager.offsets_to_commit() is None
        manager.consumer_group_added("g")
        assert manager.consumer_group_to_add() is None
        assert manager.offsets_to_commit() is None  # nothing to commit until the acks are in
        offsets = {TopicPartition("raw", 0): OffsetAndMetadata(42, "")}
        manager.add_offsets_to_txn(offsets, "g")
        assert manager.consumer_group_to_add() is None  # joined already: not sent again
        assert manager.offsets_to_commit() == (offsets, "g")
        manager.offset_committed(TopicPartition("raw", 0), 42, "g")
        manager.committing_transaction()
        manager.complete_transaction()
        # The next transaction starts without the group; it joins when that one says so.
        manager.begin_transaction()
        assert manager.consumer_group_to_add() is None
        manager.join_group("g")
        manager.aborting_transaction()
        assert manager.consumer_group_to_add() is None  # an abort adds nothing more
    finally:
        await transaction.producer.stop()


async def test_an_error_or_a_fatal_error_leaves_no_group_to_join() -> None:
    for kind in ("error_transaction", "fatal_error"):
        transaction = _transaction()
        manager = transaction.producer._txn_manager
        try:
            manager.set_pid_and_epoch(7, 0)
            manager.begin_transaction()
            manager.join_group("g")
            getattr(manager, kind)(KafkaError("refused"))
            assert manager.consumer_group_to_add() is None, kind
            manager.join_group("g")  # a commit that goes on after the error joins nothing
            assert manager.consumer_group_to_add() is None, kind
        finally:
            await transaction.producer.stop()


class _Batch:
    def append(self, **record: Any) -> object:
        return object()

    def close(self) -> None:
        pass


async def test_a_commit_joins_the_group_while_records_fly_and_sends_offsets_after_acks() -> None:
    transaction = _transaction()
    await transaction.producer.stop()  # never started: a stand-in records what the commit asks
    steps: list[Any] = []
    acks: list[asyncio.Future[Any]] = []

    class Producer:
        async def begin_transaction(self) -> None:
            steps.append("begin")

        def create_batch(self) -> _Batch:
            return _Batch()

        async def send_batch(self, batch: _Batch, topic: str, partition: int) -> Any:
            acks.append(asyncio.get_running_loop().create_future())
            steps.append(f"send {topic}-{partition}")
            return acks[-1]

        async def send_offsets_to_transaction(self, offsets: Any, group: str) -> None:
            steps.append(("offsets", {tp.partition: o.offset for tp, o in offsets.items()}))

        async def commit_transaction(self) -> None:
            steps.append("commit")

    class Manager:
        def join_group(self, group: str) -> None:
            steps.append(("join", group, sum(ack.done() for ack in acks)))

        def is_in_transaction(self) -> bool:
            return True

    transaction.producer, transaction._manager = Producer(), Manager()  # type: ignore[assignment]
    transaction._partitions = {"derived": 4, "dead": 4}
    effects = Effects(derived=[{"channel": "location:L", "name": "x"}], derived_received=[None])
    committing = asyncio.ensure_future(
        transaction.commit([Batch(1, [(b"k", b"v", 1)], effects, position=5)])
    )
    await asyncio.sleep(0.01)
    # The group joined with no acknowledgement in yet; no offsets before they are all in.
    assert steps == ["begin", "send g-changelog-1", "send derived-1", ("join", "g", 0)]
    acks[0].set_result(SimpleNamespace(offset=10))
    await asyncio.sleep(0.01)
    assert len(steps) == 4
    acks[1].set_result(SimpleNamespace(offset=3))
    assert await committing == {1: 11}
    assert steps[4:] == [("offsets", {1: 5}), "commit"]
