"""Row 7, memory and restore: a worker taking partitions whose changelog holds N table keys (1M in
`make bench`): time from process start until /healthz answers 200 (every partition restored),
and its peak RSS (VmHWM) then, beside an idle worker's.

Folding a million records through the worker would take longer than the whole bench, so the
keys are put where a worker restores them from when it takes a partition: the live group's
changelog (`streams-changelog`, compacted, as many partitions as the raw topic), written directly
with a plain producer (the restore reads committed records, which non-transactional ones are).
Each record is what the worker itself writes: key `store_key(table, key)`, value the JSON state,
in changelog partition `partition_for(location)`, where the worker keeps that location's rows.
The rows are realistic state of 1,000 locations, round-robin: `contacts` (contact -> location
and assigned user) and `conversations` (conversation -> location, contact, unread count) in
pairs, and one `unread_by_location` row per location (its conversations with unread messages).

The check that the worker holds them: the records it logged as restored add up to N, and the
unread query of locations of every partition answers exactly the written conversations' counts
and, through the contacts, the per-user totals. The idle worker runs on a broker of its own:
it is a static group member (`streams.app.instance_id`), which a second worker in the same
group would wait out for a session timeout.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bench.common import PARTITIONS, broker, worker_env
from streams.app import APP_ID
from streams.codec import dumps
from streams.routing import partition_for
from streams.runtime.changelog import changelog_topic
from streams.runtime.store import store_key
from streams.tables.contacts import CONTACTS
from streams.tables.unread import CONVERSATIONS, UNREAD_BY_LOCATION
from tests.integration.processes import Worker, http, start_worker

__all__ = ["Memory", "measure"]

LOCATIONS = 1000
USERS = 5  # per location
RESTORED = re.compile(r"restored (\d+) records in ([\d.]+)s")


@dataclass
class Memory:
    keys: int
    peak: float = 0  # MiB, VmHWM of the worker holding the keys
    idle: float = 0  # MiB, VmHWM of an idle worker
    healthy: float = 0  # seconds from process start to /healthz 200
    restoring: float = 0  # seconds the worker logged restoring, all partitions
    checked: str = ""


def _rows(keys: int, users: dict[str, dict[str, int]]) -> Iterator[tuple[str, str, Any, str]]:
    """(table, key, value, location): `keys` rows in all, the locations' unread rows last;
    `users` gets each location's unread per assigned user, as the unread query adds it up."""
    unread: dict[str, dict[str, Any]] = {f"mem-loc{i}": {} for i in range(LOCATIONS)}
    pairs = max(0, keys - LOCATIONS)
    for n in range(pairs):
        j, i = divmod(n // 2, LOCATIONS)
        location, user = f"mem-loc{i}", f"user{j % USERS}"
        contact = f"{location}-contact{j}"
        if n % 2 == 0:
            yield CONTACTS, contact, {"location": location, "assigned_to": user}, location
            continue
        count = j % 4 + 1 if j % 10 == 0 else 0
        conversation = f"{location}-conversation{j}"
        value = {"location": location, "contact": contact, "unread": count}
        yield CONVERSATIONS, conversation, value, location
        if count:
            unread[location][conversation] = {"unread": count, "contact": contact}
            totals = users.setdefault(location, {})
            totals[user] = totals.get(user, 0) + count
    for location, entries in list(unread.items())[: keys - pairs]:
        yield UNREAD_BY_LOCATION, location, entries, location


async def _fill_changelog(
    bootstrap: str, keys: int
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, int]]]:
    """Write the rows; return each location's unread row and its unread per user."""
    topic = changelog_topic(APP_ID)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # as the worker creates it (streams.runtime.loop)
        await admin.create_topics(
            [NewTopic(topic, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    unread: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, int]] = {}
    try:
        pending = []
        for table, key, value, location in _rows(keys, users):
            if table == UNREAD_BY_LOCATION:
                unread[key] = value
            pending.append(
                await producer.send(
                    topic,
                    dumps(value),
                    key=store_key(table, key),
                    partition=partition_for(location, PARTITIONS),
                )
            )
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return unread, users


def _peak(pid: int) -> float:
    """VmHWM in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def _check(
    worker: Worker, unread: dict[str, dict[str, Any]], users: dict[str, dict[str, int]]
) -> int:
    """Ask the unread of locations of every partition; the number of locations asked."""
    by_partition: dict[int, list[str]] = {}
    for location in unread:
        by_partition.setdefault(partition_for(location, PARTITIONS), []).append(location)
    asked = [location for locations in by_partition.values() for location in locations[:3]]
    for location in asked:
        quoted = urllib.parse.quote(location, safe="")
        status, answer = http("GET", f"{worker.url}/v1/locations/{quoted}/unread")
        assert status == 200, answer
        want = {c: e["unread"] for c, e in unread[location].items()}
        assert answer["conversations"] == want, (location, answer, want)
        assert answer["users"] == users.get(location, {}), (location, answer, users.get(location))
    return len(asked)


def measure(workdir: Path, keys: int) -> Memory:
    result = Memory(keys)
    with broker() as kafka:
        idle = start_worker(worker_env(kafka.bootstrap), workdir / "idle")
        try:
            idle.wait_healthy()
            time.sleep(2)
            result.idle = _peak(idle.process.pid)
        finally:
            idle.stop()
    with broker() as kafka:
        unread, users = asyncio.run(_fill_changelog(kafka.bootstrap, keys))
        started = time.perf_counter()
        full = start_worker(worker_env(kafka.bootstrap), workdir / "full")
        try:
            full.wait_healthy(timeout=900)
            result.healthy = time.perf_counter() - started
            asked = _check(full, unread, users)
            result.peak = _peak(full.process.pid)
        finally:
            full.stop()
    logged = RESTORED.findall(full.log.read_text(errors="replace"))
    restored = sum(int(n) for n, _ in logged)
    result.restoring = sum(float(s) for _, s in logged)
    assert restored == keys, f"the worker logged {restored:,} records restored, not {keys:,}"
    result.checked = (
        f"the worker logged {restored:,} records restored; the unread of {asked} locations "
        f"(every partition) answered the written counts and per-user totals"
    )
    return result
