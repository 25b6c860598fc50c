import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.producer.transaction_manager import TransactionManager
from aiokafka.structs import OffsetAndMetadata

from streams.runtime.fencing import GroupFenced, Member, _GroupFencedOffsetCommit


class Txn:
    transactional_id, producer_id, producer_epoch = "g-w1", 7, 3

    def __init__(self, member: Any) -> None:
        self.streams_member = member
        self.errors: list[BaseException] = []
        self.committed: list[tuple[TopicPartition, int, str]] = []

    def error_transaction(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self._transaction_waiter: asyncio.Future[None] = asyncio.Future()
        self._transaction_waiter.set_exception(exc)

    def offset_committed(self, tp: TopicPartition, offset: int, group: str) -> None:
        self.committed.append((tp, offset, group))


def handler(member: Any) -> tuple[Any, Txn]:
    txn = Txn(member)
    sender = SimpleNamespace(_txn_manager=txn, _retry_backoff=0.1)
    offsets = {
        TopicPartition("raw", 1): OffsetAndMetadata(42, ""),
        TopicPartition("raw", 0): OffsetAndMetadata(9, ""),
    }
    return _GroupFencedOffsetCommit(sender, offsets, "g"), txn


def test_offsets_go_as_v3_with_the_members_generation_at_the_moment_they_are_sent() -> None:
    now = [Member(4, "m-1", "w1")]
    made, _ = handler(lambda: now[0])
    now[0] = Member(5, "m-2", "w1")  # a rebalance between the transaction's start and the send
    struct = made.create_request().prepare({28: (0, 6)})
    assert struct.API_VERSION == 3 and struct.FLEXIBLE_VERSION
    decoded = type(struct).decode(struct.encode())
    assert decoded.to_object() | {"topics": None} == {
        "transactional_id": "g-w1",
        "group_id": "g",
        "producer_id": 7,
        "producer_epoch": 3,
        "generation_id": 5,
        "member_id": "m-2",
        "group_instance_id": "w1",
        "topics": None,
        "tags": {},
    }
    [topic] = decoded.topics
    assert topic[0] == "raw" and [p[:2] for p in topic[1]] == [(0, 9), (1, 42)]


def test_a_broker_without_v3_is_refused_rather_than_sent_an_unfenced_commit() -> None:
    made, _ = handler(lambda: Member(1, "m", None))
    with pytest.raises(NotImplementedError):
        made.create_request().prepare({28: (0, 2)})


@pytest.mark.parametrize("member", [Member(-1, "", None), Member(3, "", "w1")])
async def test_a_worker_that_is_no_member_now_is_refused_without_asking(member: Member) -> None:
    # The coordinator would accept it: it checks nothing of a transactional commit that names
    # no member (its older clients' way), and aiokafka forgets the member when fenced.
    made, txn = handler(lambda: member)
    assert await made.do(node_id=0) is True  # no request: `sender.client` does not exist
    [error] = txn.errors
    assert isinstance(error, GroupFenced) and "no generation" in str(error)


@pytest.mark.parametrize("code", [22, 25, 82])
async def test_a_stale_member_aborts_the_transaction(code: int) -> None:
    made, txn = handler(lambda: Member(1, "m", None))
    response = (
        made.create_request()
        .prepare({28: (0, 6)})
        .RESPONSE_TYPE(0, [("raw", [(0, 0, {}), (1, code, {})], {})], {})
    )
    assert made.handle_response(response) is None
    [error] = txn.errors
    assert isinstance(error, GroupFenced) and f"error {code}" in str(error)


async def test_accepted_offsets_are_recorded_as_aiokafka_records_them() -> None:
    made, txn = handler(lambda: Member(1, "m", None))
    response = (
        made.create_request()
        .prepare({28: (0, 6)})
        .RESPONSE_TYPE(0, [("raw", [(0, 0, {}), (1, 0, {})], {})], {})
    )
    assert made.handle_response(response) is None
    assert txn.errors == []
    assert txn.committed == [
        (TopicPartition("raw", 0), 9, "g"),
        (TopicPartition("raw", 1), 42, "g"),
    ]


def test_a_producer_not_fenced_by_a_group_keeps_aiokafkas_request() -> None:
    made, _ = handler(None)
    assert isinstance(made.create_request(), aiokafka_sender.TxnOffsetCommitRequest)


async def test_with_aiokafkas_transaction_manager_a_refusal_fails_the_commit_and_aborts_locally() -> (
    None
):
    txn = TransactionManager("g-w1", 10_000)
    txn.set_pid_and_epoch(7, 3)
    txn.begin_transaction()
    offsets = {TopicPartition("raw", 0): OffsetAndMetadata(9, "")}
    waiting = txn.add_offsets_to_txn(offsets, "g")  # what send_offsets_to_transaction awaits
    txn.streams_member = lambda: Member(-1, "", None)  # type: ignore[attr-defined]
    sender = SimpleNamespace(_txn_manager=txn, _retry_backoff=0.1)
    assert await _GroupFencedOffsetCommit(sender, offsets, "g").do(node_id=0) is True
    with pytest.raises(GroupFenced):
        await waiting
    # abort_transaction's steps: nothing is left to end on the broker's side from here (the
    # runtime replaces the producer, which ends the transaction there).
    txn.aborting_transaction()
    assert txn.is_empty_transaction() and not txn.is_fatal_error()
    txn.complete_transaction()
    assert txn.state.name == "READY"
