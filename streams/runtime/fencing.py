"""A worker's transactions fenced by its consumer group (KIP-447), which aiokafka does not send.

aiokafka 0.14 commits a transaction's offsets with TxnOffsetCommit v0, which carries no group
metadata: the group coordinator cannot tell a worker that lost its partitions from their owner.
From v3 the request carries the member's generation, member id and static instance id, and the
coordinator refuses a stale one (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID), so
nothing a worker wrote in a transaction after losing its partitions is ever visible. That is what
lets one producer serve every partition of a worker (Kafka Streams' exactly-once v2), where a
producer per partition was needed before.

`fence_by_group(producer, member)` makes a transactional producer's offset commits v3, with the
group metadata `member()` gives at the moment each is sent (it moves with every rebalance). A
member without a generation (aiokafka resets it when the group has moved on) is refused here,
without asking: the coordinator skips every check for a transactional commit that names no
member, for its older clients. aiokafka picks its handler from a module global, so the handler
is replaced process-wide: producers not fenced by a group keep v0's behaviour.

A refused commit leaves the producer's transaction open on the broker: aiokafka's abort sends no
EndTxn once the error has cleared the transaction's partitions. Its owner must start a new
producer with the same transactional id, which ends that transaction (`streams.runtime.loop`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.producer import sender as aiokafka_sender
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from streams.errors import StreamsError

__all__ = ["NO_MEMBER", "GroupFenced", "Member", "consumer_member", "fence_by_group"]

# The coordinator's answers to a member that is no longer the partitions' owner.
ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID = 22, 25, 82
FENCED_BY_GROUP = {ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID}


class GroupFenced(StreamsError, RuntimeError):
    """The group moved on without this worker: its transaction must not commit."""


class Member(NamedTuple):
    """Who commits, as the group coordinator knows the member."""

    generation: int
    member_id: str
    instance_id: str | None


NO_MEMBER = Member(-1, "", None)


def consumer_member(consumer: AIOKafkaConsumer) -> Callable[[], Member]:
    """The consumer's generation and member at the moment an offset commit is sent (none
    before it has joined its group)."""

    def member() -> Member:
        coordinator = consumer._coordinator
        if coordinator is None:
            return NO_MEMBER
        return Member(coordinator.generation, coordinator.member_id, coordinator._group_instance_id)

    return member


_TEXT = CompactString("utf-8")


class _TxnOffsetCommitResponse_v3(Response):
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", _TEXT),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32), ("error_code", Int16), ("tags", TaggedFields)
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _TxnOffsetCommitRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = _TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", _TEXT),
        ("group_id", _TEXT),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", _TEXT),
        ("group_instance_id", _TEXT),
        (
            "topics",
            CompactArray(
                ("name", _TEXT),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", _TEXT),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _TxnOffsetCommitV3(Request[_TxnOffsetCommitRequest_v3]):
    API_KEY = 28

    def __init__(self, fields: tuple[Any, ...]) -> None:
        self._fields = fields

    def build(self, request_struct_class: type[_TxnOffsetCommitRequest_v3]) -> Any:
        return request_struct_class(*self._fields)


class _GroupFencedOffsetCommit(aiokafka_sender.TxnOffsetCommitHandler):
    """aiokafka's handler, sending v3 with the group metadata of a producer fenced by group."""

    def _member(self) -> Member | None:
        """The producer's group member now; None for a producer not fenced by a group."""
        member = getattr(self._sender._txn_manager, "streams_member", None)
        return None if member is None else member()

    def create_request(self) -> Any:
        txn = self._sender._txn_manager
        now = self._member()
        if now is None:  # a producer not fenced by a group: aiokafka's own request
            return super().create_request()
        by_topic: dict[str, list[tuple[int, int, int, str, dict[int, bytes]]]] = {}
        for tp, offset in sorted(self._offsets.items()):
            by_topic.setdefault(tp.topic, []).append(
                (tp.partition, offset.offset, -1, offset.metadata, {})
            )
        return _TxnOffsetCommitV3(
            (
                txn.transactional_id,
                self._group_id,
                txn.producer_id,
                txn.producer_epoch,
                now.generation,
                now.member_id,
                now.instance_id,
                [(topic, partitions, {}) for topic, partitions in by_topic.items()],
                {},
            )
        )

    async def do(self, node_id: int) -> bool:
        now = self._member()
        if now is not None and (now.generation < 0 or not now.member_id):
            # Not a member now: refused without asking (see the module docstring).
            self._refuse(f"no generation: {now}")
            return True
        return bool(await super().do(node_id))

    def handle_response(self, resp: Any) -> Any:
        if not isinstance(resp, _TxnOffsetCommitResponse_v3):
            return super().handle_response(resp)
        fenced = [c for _, parts, _ in resp.topics for _, c, _ in parts if c in FENCED_BY_GROUP]
        if fenced:
            self._refuse(f"error {fenced[0]}")
            return None
        resp.errors = [(t, [(p, c) for p, c, _ in parts]) for t, parts, _ in resp.topics]
        return super().handle_response(resp)

    def _refuse(self, why: str) -> None:
        """Fail the transaction's commit (the error is the caller's; the producer must be
        replaced, see the module docstring)."""
        txn = self._sender._txn_manager
        txn.error_transaction(GroupFenced(f"the group moved on without this worker ({why})"))
        txn._transaction_waiter.exception()  # raised to the caller through its offsets' future


def fence_by_group(producer: AIOKafkaProducer, member: Callable[[], Member]) -> None:
    """Send this producer's transactional offset commits with `member()`'s group metadata."""
    if not hasattr(aiokafka_sender, "TxnOffsetCommitHandler"):  # an aiokafka that moved it
        raise RuntimeError("aiokafka.producer.sender.TxnOffsetCommitHandler is gone")
    aiokafka_sender.TxnOffsetCommitHandler = _GroupFencedOffsetCommit
    producer._txn_manager.streams_member = member
