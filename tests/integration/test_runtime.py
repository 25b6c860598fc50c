"""The runtime against a real broker: fencing by the group, a killed worker's open transaction,
restoring from a checkpoint, and exactly once through twenty SIGKILLs and a paused worker that
comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from streams.app import APP_ID
from streams.codec import dumps
from streams.derived import STATE_EVENTS
from streams.runtime.changelog import read_changelog, reader, restore, settled
from streams.runtime.fencing import Member, consumer_member
from streams.runtime.store import POSITION, Store, store_key
from streams.runtime.transaction import (
    TRANSACTION_TIMEOUT_MS,
    Batch,
    Effects,
    PartitionsLost,
    Transaction,
)
from streams.topics import RAW_WEBHOOKS, ensure_topics
from streams.worker import EXIT_TRANSIENT_FAILURE
from tests.integration.processes import Worker, free_port, start_worker, wait_for
from tests.integration.services import TEST_PARTITIONS, AblyServer
from tests.integration.test_faults import notifications_wrong, projections_match
from tests.integration.webhooks import (
    Delivery,
    ably_messages,
    committed_twice,
    consumed_after,
    deliver,
    derived_records,
    post_webhook,
    query,
    webhook_env,
)
from tests.traffic import expected, generate


async def fresh_group(kafka: str) -> tuple[str, str, str]:
    """A group name, its source topic and its changelog topic (one partition each)."""
    group = f"rt-{uuid.uuid4().hex[:8]}"
    source, changelog = f"{group}-source", f"{group}-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(source, 1, 1),
                NewTopic(changelog, 1, 1, topic_configs={"cleanup.policy": "compact"}),
                NewTopic(f"{group}-derived", 1, 1),
            ]
        )
    finally:
        await admin.close()
    return group, source, changelog


async def owner(kafka: str, group: str, name: str, member: Callable[[], Member]) -> Transaction:
    """A started transactional producer of `group`'s worker `name`."""
    transaction = Transaction(
        kafka,
        group=group,
        transactional_id=f"{group}-{name}",
        source_topic=f"{group}-source",
        changelog_topic=f"{group}-changelog",
        derived_topic=f"{group}-derived",
        dead_letter_topic=f"{group}-derived",
    )
    await transaction.start(member)
    return transaction


async def joined(kafka: str, group: str) -> AIOKafkaConsumer:
    """A member of `group` that owns its source partition."""
    consumer = AIOKafkaConsumer(
        f"{group}-source", bootstrap_servers=kafka, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    deadline = time.monotonic() + 30
    while not consumer.assignment():
        assert time.monotonic() < deadline, "no partition assigned in 30 s"
        await consumer.getmany(timeout_ms=100)
    return consumer


def batch(*changes: tuple[bytes, bytes, object], position: int, **effects: Any) -> Batch:
    """Partition 0's batch: its changes, its source position among them (as `Task.fold` writes
    it), and its effects."""
    return Batch(0, [*changes, (POSITION, dumps(position), position)], Effects(**effects), position)


def change(key: str, value: object) -> tuple[bytes, bytes, object]:
    return store_key("t", key), dumps(value), value


async def ended(kafka: str, changelog: str) -> None:
    """Until changelog partition 0 holds no open transaction: a commit returns before its
    markers are written, and an abort too."""
    committed, log_end = reader(kafka), AIOKafkaConsumer(bootstrap_servers=kafka)
    await committed.start()
    await log_end.start()
    try:
        await settled(committed, log_end, TopicPartition(changelog, 0), time.monotonic() + 60)
    finally:
        await committed.stop()
        await log_end.stop()


async def restored(kafka: str, changelog: str, path: Path) -> Store:
    """A new store restored from the whole changelog (closed by the caller)."""
    await ended(kafka, changelog)
    consumer = reader(kafka)
    await consumer.start()
    store = Store(path)
    try:
        await restore(consumer, store, TopicPartition(changelog, 0))
    finally:
        await consumer.stop()
    return store


async def test_a_worker_the_group_moved_on_without_can_never_commit(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    group, _, changelog = await fresh_group(kafka_bootstrap)
    first = await joined(kafka_bootstrap, group)
    as_of_then = consumer_member(first)()
    old = await owner(kafka_bootstrap, group, "w1", lambda: as_of_then)
    assert (await old.commit([batch(change("a", 1), position=5)]))[0] is not None
    # It pauses; the group moves on: another member owns the partition in a new generation.
    await first.stop()
    second = await joined(kafka_bootstrap, group)
    new = await owner(kafka_bootstrap, group, "w2", consumer_member(second))
    try:
        with pytest.raises(PartitionsLost):
            await old.commit(
                [
                    batch(
                        change("a", 666),
                        change("zombie", 1),
                        position=99,
                        derived=[{"channel": "c", "id": "zombie"}],
                    )
                ]
            )
        await new.commit([batch(change("b", 2), position=7)])
        # Its loop replaces the refused producer at once: the new one, of the same transactional
        # id, ends the refused transaction, which holds every reader of the changelog until then.
        await old.stop()
        began = time.monotonic()
        old = await owner(kafka_bootstrap, group, "w1", lambda: as_of_then)
        await ended(kafka_bootstrap, changelog)
        assert time.monotonic() - began < TRANSACTION_TIMEOUT_MS / 1000
    finally:
        await old.stop()
        await new.stop()
        await second.stop()
    tables = await read_changelog(kafka_bootstrap, group)
    assert tables == {"t": {"a": 1, "b": 2}}
    store = await restored(kafka_bootstrap, changelog, tmp_path / "p0")
    try:
        assert store.position == 7
        assert store.get(store_key("t", "zombie")) is None
    finally:
        store.close()


async def open_transaction(kafka: str, group: str, name: str, timeout_ms: int) -> AIOKafkaProducer:
    """A worker that wrote to changelog partition 0 in a transaction, and died before its end."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka,
        transactional_id=f"{group}-{name}",
        transaction_timeout_ms=timeout_ms,
    )
    await producer.start()
    await producer.begin_transaction()
    await (
        await producer.send(f"{group}-changelog", key=store_key("t", "x"), value=b"1", partition=0)
    )
    return producer


async def test_a_batch_left_open_by_a_killed_worker_ends_when_it_restarts(
    kafka_bootstrap: str,
) -> None:
    group, _, _ = await fresh_group(kafka_bootstrap)
    killed = await open_transaction(kafka_bootstrap, group, "w1", 60_000)
    # Restarted on its data directory: the same transactional id, which ends that transaction.
    member = await joined(kafka_bootstrap, group)
    restarted = await owner(kafka_bootstrap, group, "w1", consumer_member(member))
    try:
        await restarted.commit([batch(change("y", 2), position=3)])
    finally:
        await restarted.stop()
        await killed.stop()
        await member.stop()
    await ended(kafka_bootstrap, f"{group}-changelog")
    assert await read_changelog(kafka_bootstrap, group) == {"t": {"y": 2}}


async def test_a_new_owner_restores_only_once_the_previous_owners_transaction_ended(
    kafka_bootstrap: str,
) -> None:
    group, _, changelog = await fresh_group(kafka_bootstrap)
    tp = TopicPartition(changelog, 0)
    committed_reader, log_end = (
        reader(kafka_bootstrap),
        AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap),
    )
    await committed_reader.start()
    await log_end.start()
    killed = await open_transaction(kafka_bootstrap, group, "w1", 3_000)
    try:
        began = time.monotonic()
        await settled(committed_reader, log_end, tp, deadline=began + 60)
        # Not before the coordinator aborted it (its timeout, then the broker's next check).
        assert time.monotonic() - began >= 2.0
        assert (await committed_reader.end_offsets([tp]))[tp] == (await log_end.end_offsets([tp]))[
            tp
        ]
    finally:
        await killed.stop()
        await committed_reader.stop()
        await log_end.stop()
    assert await read_changelog(kafka_bootstrap, group) == {}


async def test_a_store_restores_only_the_changelog_tail_after_its_checkpoint(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    group, _, changelog = await fresh_group(kafka_bootstrap)
    member = await joined(kafka_bootstrap, group)
    writer = await owner(kafka_bootstrap, group, "w1", consumer_member(member))
    store = Store(tmp_path / "p0")
    try:
        first = batch(*(change(f"k{n}", n) for n in range(100)), position=1)
        store.write(first.changes, (await writer.commit([first]))[0])
        store.close()
        # Another worker carried on meanwhile: three more keys in the changelog.
        await writer.commit(
            [batch(change("k1", "new"), change("k200", 200), change("k201", 201), position=2)]
        )
    finally:
        await writer.stop()
        await member.stop()
    consumer = reader(kafka_bootstrap)
    await consumer.start()
    store = Store(tmp_path / "p0")
    try:
        assert store.position == 1
        read = await restore(consumer, store, TopicPartition(changelog, 0))
        assert read == 4
        assert store.position == 2
        assert store.get(store_key("t", "k1")) == "new"
        assert store.get(store_key("t", "k99")) == 99
        assert store.get(store_key("t", "k201")) == 201
        assert await restore(consumer, store, TopicPartition(changelog, 0)) == 0
    finally:
        store.close()
        await consumer.stop()


def ingress_and_worker(env: dict[str, str], tmp_path: Path) -> tuple[Worker, int]:
    ingress = start_worker(env, tmp_path / "ingress", command="ingress")
    ingress.wait_healthy()
    return ingress, free_port()


async def test_twenty_kill_9s_over_a_live_stream_leave_every_answer_exact_and_every_event_once(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = f"r{uuid.uuid4().hex[:6]}"
    bodies = generate(4000, locations=6, prefix=run, seed=17)
    want = expected(bodies)
    env = webhook_env(kafka_bootstrap, ably_server)
    await ensure_topics(kafka_bootstrap, partitions=TEST_PARTITIONS, replication_factor=1)
    ingress, port = ingress_and_worker(env, tmp_path)
    data = tmp_path / "worker"
    worker = start_worker(env, data, port=port)
    kills = 0
    try:
        worker.wait_healthy()
        delivery = Delivery()
        sender = threading.Thread(
            target=deliver,
            args=(bodies, lambda: [ingress.url], delivery),
            kwargs={"pause": 0.01},
            daemon=True,
        )
        sender.start()
        while kills < 20:
            # Kill it at a different point of its work each time: just healthy, or a moment on.
            wait_for(lambda: False, timeout=0.2 * (kills % 4))
            worker.kill()
            kills += 1
            worker = start_worker(env, data, port=port)
            worker.wait_healthy(timeout=120)
        sender.join(timeout=600)
        assert not sender.is_alive() and delivery.accepted == len(bodies), delivery
        wrong = wait_for(lambda: not projections_match(worker, want), timeout=300)
        assert wrong, projections_match(worker, want)
        assert wait_for(lambda: not notifications_wrong(ably_server, run, bodies), 240), (
            notifications_wrong(ably_server, run, bodies)
        )
        # Exactly once in the log itself, not only at Ably: no derived event committed twice.
        emitted = await derived_records(kafka_bootstrap, run)
        assert committed_twice(emitted) == []
        seen = ably_messages(ably_server, run)
        # Every discrete event derived was published (state events may be conflated), and
        # nothing that was not derived.
        assert {e["id"] for e in emitted if e["name"] not in STATE_EVENTS} == {
            m["id"] for m in seen if m["name"] not in STATE_EVENTS
        }
        assert {m["id"] for m in seen} <= {e["id"] for e in emitted}
    finally:
        worker.stop()
        ingress.stop()


async def test_a_paused_worker_that_comes_back_writes_nothing_for_partitions_it_lost(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    run = f"z{uuid.uuid4().hex[:6]}"
    bodies = generate(1500, locations=6, prefix=run, seed=23)
    first, second = bodies[:700], bodies[700:]
    want = expected(bodies)
    env = webhook_env(kafka_bootstrap, ably_server)
    await ensure_topics(kafka_bootstrap, partitions=TEST_PARTITIONS, replication_factor=1)
    ingress, _ = ingress_and_worker(env, tmp_path)
    workers = [start_worker(env, tmp_path / f"w{n}") for n in (1, 2)]
    try:
        for worker in workers:
            worker.wait_healthy()
        deliver(first, lambda: [ingress.url], pause=0.01)
        # Worker 2 freezes (SIGSTOP) mid-stream; the group gives its partitions to worker 1.
        sender = threading.Thread(
            target=deliver,
            args=(second, lambda: [ingress.url]),
            kwargs={"pause": 0.01},
            daemon=True,
        )
        sender.start()
        os.kill(workers[1].process.pid, signal.SIGSTOP)
        try:
            sender.join(timeout=600)
            assert wait_for(lambda: not projections_match(workers[0], want), timeout=180), (
                projections_match(workers[0], want)
            )
        finally:
            os.kill(workers[1].process.pid, signal.SIGCONT)  # it wakes up with stale batches
        # It rejoins; whatever it had in flight was fenced. Everything is still exact, once.
        workers[1].wait_healthy(timeout=120)
        for worker in workers:
            assert wait_for(lambda w=worker: not projections_match(w, want), timeout=180), (
                projections_match(worker, want)
            )
        assert wait_for(lambda: not notifications_wrong(ably_server, run, bodies), 180), (
            notifications_wrong(ably_server, run, bodies)
        )
        emitted = await derived_records(kafka_bootstrap, run)
        assert committed_twice(emitted) == []
    finally:
        for worker in workers:
            worker.stop()
        ingress.stop()


async def move_group_offsets_to_the_start(kafka: str) -> None:
    """Set the live group's committed offsets of the raw log back to 0, once the group is empty
    (the tests' workers leave it when they stop: STREAMS_LEAVE_GROUP_ON_STOP)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=APP_ID, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(RAW_WEBHOOKS.name, p) for p in range(TEST_PARTITIONS)]
        consumer.assign(partitions)
        deadline = time.monotonic() + 60
        while True:
            try:
                await consumer.commit({tp: 0 for tp in partitions})
                return
            except KafkaError:  # the group still has members
                assert time.monotonic() < deadline, "the group did not empty in 60 s"
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


async def test_a_worker_resumes_from_the_position_committed_with_its_state_not_the_group_offset(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    # The group's committed offsets only follow the transactions (a worker killed between the
    # two leaves them behind): a worker that restores the state resumes where the state is.
    run = f"p{uuid.uuid4().hex[:6]}"
    bodies = generate(600, locations=4, prefix=run, seed=29)
    want = expected(bodies)
    env = webhook_env(kafka_bootstrap, ably_server)
    worker = start_worker(env, tmp_path / "first")
    try:
        worker.wait_healthy()
        deliver(bodies, lambda: [worker.url], pause=0.002)
        assert wait_for(lambda: not projections_match(worker, want), timeout=120), (
            projections_match(worker, want)
        )
        await consumed_after(kafka_bootstrap, timeout=120)
    finally:
        worker.stop()
    emitted_before = len(await derived_records(kafka_bootstrap, run))
    await move_group_offsets_to_the_start(kafka_bootstrap)

    # A new data directory: the state, its position included, comes from the changelog.
    worker = start_worker(env, tmp_path / "second")
    try:
        worker.wait_healthy()
        # The group's offsets are brought up to the restored position, and nothing is refolded.
        await consumed_after(kafka_bootstrap, timeout=60)
        assert worker.counter("streams_raw_records_total") == 0  # folded since it started
        assert not projections_match(worker, want)
        assert len(await derived_records(kafka_bootstrap, run)) == emitted_before
    finally:
        worker.stop()


async def group_members(kafka: str, group: str) -> list[str]:
    """The member ids of the group's members now (a static member's starts with its instance
    id)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([group])
        [found] = described.to_object()["groups"]
        return [member["member_id"] for member in found["members"]]
    finally:
        await admin.close()


async def test_a_worker_stays_a_member_after_a_clean_stop_unless_told_to_leave(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    # A static member stays until its session times out (a restart takes its partitions back
    # with no rebalance); with STREAMS_LEAVE_GROUP_ON_STOP=1 a clean stop leaves at once.
    env = webhook_env(kafka_bootstrap, ably_server)
    data = tmp_path / "worker"
    for leave in ("0", "1"):
        worker = start_worker(env | {"STREAMS_LEAVE_GROUP_ON_STOP": leave}, data)
        try:
            worker.wait_healthy()
        finally:
            worker.stop()
        assert worker.process.returncode == 0, worker.tail()
        instance = (data / "worker" / "instance-id").read_text().strip()
        members = await group_members(kafka_bootstrap, APP_ID)
        stayed = [m for m in members if m.startswith(f"{instance}-")]
        assert (members, len(stayed)) == ((stayed, 1) if leave == "0" else ([], 0)), members


async def test_a_worker_that_stops_on_a_fault_stays_a_member_to_be_restarted(
    kafka_bootstrap: str, ably_server: AblyServer, tmp_path: Path
) -> None:
    # STREAMS_LEAVE_GROUP_ON_STOP is set (webhook_env), but a fault is no stop for good: the
    # worker stays a member, and its restart (here with the fix) takes its partitions back.
    env = webhook_env(kafka_bootstrap, ably_server)
    data = tmp_path / "worker"
    location = f"b{uuid.uuid4().hex[:6]}"
    contact = {
        "type": "ContactCreate",
        "locationId": location,
        "id": f"{location}-c",
        "firstName": "Bug",
        "dateAdded": "2026-03-02T10:00:00Z",
        "webhookId": f"{location}-wh",
    }
    buggy = start_worker(
        env, data, program=[sys.executable, "-m", "tests.integration.worker_with_a_bug"]
    )
    try:
        buggy.wait_healthy()
        status, answer = post_webhook(buggy, contact)
        assert status == 200, answer
        assert buggy.process.wait(120) == EXIT_TRANSIENT_FAILURE, buggy.tail()
    finally:
        buggy.stop()
    instance = (data / "worker" / "instance-id").read_text().strip()
    members = await group_members(kafka_bootstrap, APP_ID)
    assert len(members) == 1 and members[0].startswith(f"{instance}-"), members
    fixed = start_worker(env, data)
    try:
        fixed.wait_healthy()
        assert wait_for(lambda: query(fixed, location, "leads")[1].get("total") == 1), fixed.tail()
    finally:
        fixed.stop()
    assert fixed.process.returncode == 0, fixed.tail()
    assert await group_members(kafka_bootstrap, APP_ID) == []
