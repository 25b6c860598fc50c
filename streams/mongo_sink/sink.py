"""The MongoDB sink: follows the changelogs of the chosen projections' versions and keeps their
read models current in MongoDB (`streams.mongo_sink.documents` has the shapes).

It reads what the worker and the replay workers committed (each version's changelog, committed
records only), in a consumer group of its own so that sinks in several workers share the
partitions. Each partition keeps a replica of the tables its read models read and writes what a
batch changed as guarded bulk writes (`streams.mongo_sink.writer`); MongoDB's position for the
partition moves with them, and the replica's checkpoint after them. Nothing is lost or doubled:
a restart, a kill -9 or a rebalance reads again from the replica's checkpoint, and MongoDB
refuses whatever is older than what it holds.

Each version writes its own collections (`revenue_days_v2`); the alias (`read_models`) names the
one that answers and is switched, in one write, once the promoted version's collections have
caught up with its changelog. A version dropped loses its collections. MongoDB down or slow:
each write is retried with a growing pause (up to `MAX_PAUSE`), the changelog waits, nothing is
skipped; the worker beside it goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from streams import metrics
from streams.errors import StreamsError
from streams.mongo_sink.documents import ReadModel, check_projections, models_of, tables_of
from streams.mongo_sink.pending import Pending
from streams.mongo_sink.writer import ReadModelWriter
from streams.replay.control import watch_versions
from streams.replay.versions import Versions
from streams.runtime.changelog import changelog_topic, stale
from streams.runtime.store import Store
from streams.settings import Secret
from streams.tables.projection import Projection

__all__ = ["MongoSink", "mongo_client", "sink_group", "sources"]

log = logging.getLogger(__name__)

MAX_RECORDS = 50_000  # changelog records per round: a backlog coalesces into large writes
MAX_PAUSE = 5.0  # seconds between two attempts at MongoDB, at most
CONTROL_SECONDS = 1.0  # aliases, drops and lag, this often

T = TypeVar("T")
# Changelog topic -> projection -> the version of it that topic holds.
Sources = dict[str, dict[str, int]]


def sink_group(database: str) -> str:
    """The consumer group of the sinks writing `database` (one configuration per database)."""
    return f"streams-mongo-sink-{database}"


def mongo_client(uri: Secret) -> AsyncMongoClient[dict[str, Any]]:
    # Short waits: a write that cannot reach MongoDB, or hangs, is retried by the sink.
    return AsyncMongoClient(
        uri.reveal(), tz_aware=True, serverSelectionTimeoutMS=3000, socketTimeoutMS=10_000
    )


def sources(
    recorded: Mapping[str, Versions], projections: Iterable[str], catalog: Mapping[str, Projection]
) -> Sources:
    """Every existing version of the chosen projections, by the changelog holding it."""
    out: Sources = {}
    for name in projections:
        projection = catalog[name]
        versions = recorded.get(name) or Versions.initial(projection)
        for version in versions.all(projection):
            topic = changelog_topic(versions.group(projection, version))
            out.setdefault(topic, {})[name] = version
    return out


class GaveWay(StreamsError, RuntimeError):
    """A write MongoDB kept refusing was abandoned for a rebalance (the records are read again)."""


class MongoSink(ConsumerRebalanceListener):
    def __init__(
        self,
        bootstrap: str,
        uri: Secret,
        database: str,
        projections: Sequence[str],
        data_dir: Path,
        catalog: Mapping[str, Projection],
    ) -> None:
        check_projections(projections)
        self.bootstrap, self.uri, self.database = bootstrap, uri, database
        self.projections, self.data_dir, self.catalog = tuple(projections), data_dir, catalog
        self.recorded: dict[str, Versions] = {}
        self.sources: Sources = {}
        self.subscribed: frozenset[str] = frozenset()
        self.parts: dict[TopicPartition, Pending] = {}
        self.ends: dict[TopicPartition, int] = {}  # the changelog's end when a replica opened
        self.must_reach: dict[TopicPartition, int] = {}  # MongoDB is ahead of the replica
        self.lag_seconds: dict[str, float] = {}  # topic -> at its last write
        self.caught_up_to: dict[str, dict[int, int]] = {}  # topic -> the ends at the last check
        self._busy = asyncio.Lock()  # a write and a rebalance never overlap
        self._revoking = False  # a rebalance waits: a write being retried gives way
        self._failed: BaseException | None = None  # in a rebalance callback
        self._versions_read = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled. A sink that fails (a bug, Kafka gone) starts again after a pause
        growing to 30 s, from its replicas and MongoDB's positions: the worker beside it goes on."""
        pause = 1.0
        while True:
            started = time.monotonic()
            try:
                await self._run_once()
            except Exception:  # not CancelledError: a stopping worker stops the sink
                metrics.count("streams_mongo_sink_errors_total")
                log.exception("MongoDB sink failed; starting it again in %.0fs", pause)
            pause = 1.0 if time.monotonic() - started > 60 else min(pause * 2, 30.0)
            await asyncio.sleep(pause)

    async def _run_once(self) -> None:
        self._versions_read.clear()
        self.subscribed, self._failed, self._revoking = frozenset(), None, False
        client = mongo_client(self.uri)
        self.writer = ReadModelWriter(client[self.database])
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=sink_group(self.database),
            enable_auto_commit=False,  # positions live beside the state, not in the group
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        jobs: list[asyncio.Future[None]] = []
        try:
            await self.consumer.start()
            jobs = [
                asyncio.ensure_future(self._follow_versions()),
                asyncio.ensure_future(self._control()),
            ]
            log.info(
                "MongoDB sink of %s into database %r", ", ".join(self.projections), self.database
            )
            while True:
                for job in jobs:  # they run as long as the sink: one that ended failed
                    if job.done():
                        raise job.exception() or RuntimeError("a sink job ended")
                if self._failed is not None:
                    raise self._failed
                if self._versions_read.is_set():
                    await self._round()
                else:
                    await asyncio.sleep(0.1)
        finally:
            for job in jobs:
                job.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*jobs, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            async with self._busy:
                for tp in list(self.parts):
                    self._close(tp)
            await client.close()

    async def _round(self) -> None:
        if not self.subscribed:
            await asyncio.sleep(0.2)
            return
        fetched = await self.consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
        positions = {}
        for tp in list(self.parts):
            with contextlib.suppress(IllegalStateError, AssertionError):  # revoked meanwhile
                positions[tp] = await self.consumer.position(tp)
        async with self._busy:
            for tp, records in fetched.items():
                part = self.parts.get(tp)
                if part is not None:
                    part.add(records)
            for tp, position in positions.items():
                part = self.parts.get(tp)
                if part is not None and tp in self.consumer.assignment():
                    part.advance(position)
            ready = [
                (tp, part)
                for tp, part in self.parts.items()
                if part.next_offset is not None
                and part.next_offset >= self.must_reach.get(tp, part.next_offset)
            ]
            # One after the other: FerretDB 1.24 (SQLite) stalls under concurrent bulk writes.
            for tp, part in ready:
                try:
                    await self._write(tp, part)
                except GaveWay:
                    return  # the rebalance closes the partitions; their new owners read again
                if self.must_reach.pop(tp, None) is not None:
                    log.info("%s-%d: MongoDB's position reached", tp.topic, tp.partition)
            for tp, part in self.parts.items():
                # No Kafka call under the lock: a rebalance waiting for it would wait forever.
                if part.fresh and (part.store.checkpoint or 0) >= self.ends.get(tp, 0):
                    part.caught_up()
                    log.debug(
                        "%s-%d: caught up at offset %s",
                        tp.topic,
                        tp.partition,
                        part.store.checkpoint,
                    )

    async def _write(self, tp: TopicPartition, part: Pending) -> None:
        writes = part.writes()
        indexes = {name: model.index for model, name in part.models}
        assert part.next_offset is not None
        next_offset = part.next_offset
        began = time.monotonic()
        done = await self._retrying(
            lambda: self.writer.write(tp.topic, tp.partition, next_offset, writes, indexes)
        )
        log.debug(
            "%s-%d: %d writes up to offset %d in %.3fs",
            tp.topic,
            tp.partition,
            done,
            next_offset,
            time.monotonic() - began,
        )
        if part.first_timestamp is not None:
            lag = max(0.0, time.time() - part.first_timestamp / 1000)
            self.lag_seconds[tp.topic] = lag
            metrics.observe("streams_mongo_sink_write_lag_seconds", lag)
        part.stored()
        metrics.count("streams_mongo_sink_writes_total", done)

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Until MongoDB takes it; a pause growing to `MAX_PAUSE` between attempts."""
        pause = 0.1
        while True:
            try:
                return await attempt()
            except PyMongoError as exc:
                if self._revoking:
                    raise GaveWay from exc
                metrics.count("streams_mongo_sink_errors_total")
                log.warning("MongoDB: %s; trying again in %.1fs", _first_line(exc), pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)

    # -- which changelogs: the recorded versions ---------------------------------------------

    async def _follow_versions(self) -> None:
        async for recorded in watch_versions(self.bootstrap):
            self.recorded = recorded
            self.sources = sources(recorded, self.projections, self.catalog)
            await self._subscribe()
            self._versions_read.set()

    async def _subscribe(self) -> None:
        """Subscribe to the sources' changelogs that exist (a replay run creates its own)."""
        existing = await self.consumer.topics()
        wanted = frozenset(t for t in self.sources if t in existing)
        if wanted != self.subscribed:
            self.subscribed = wanted
            if wanted:
                self.consumer.subscribe(sorted(wanted), listener=self)
            else:
                self.consumer.unsubscribe()

    # -- rebalances ---------------------------------------------------------------------------

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._revoking = True  # a write MongoDB keeps refusing gives way
        try:
            async with self._busy:  # a write in progress ends first
                for tp in revoked:
                    self._close(tp)
        finally:
            self._revoking = False

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        try:
            await self._open(assigned)
        except Exception as exc:  # aiokafka would only log it: the sink starts again instead
            self._failed = exc

    async def _open(self, assigned: Iterable[TopicPartition]) -> None:
        async with self._busy:
            tps = [tp for tp in assigned if tp.topic in self.sources]
            if not tps:
                return
            firsts = await self.consumer.beginning_offsets(tps)
            ends = await self.consumer.end_offsets(tps)
            positions: dict[str, dict[int, int]] = {}
            for tp in tps:
                if tp.topic not in positions:
                    positions[tp.topic] = await self._retrying(
                        lambda t=tp.topic: self.writer.positions(t)  # type: ignore[misc]
                    )
                held = positions[tp.topic].get(tp.partition)
                if held is not None and held > ends[tp]:
                    # The changelog was recreated: MongoDB's position means nothing there now.
                    log.warning(
                        "%s: MongoDB at %d, past the end %d: starting over", tp, held, ends[tp]
                    )
                    await self.writer.forget_position(tp.topic, tp.partition)
                    held = None
                store = Store(self.data_dir / tp.topic / f"partition-{tp.partition}")
                checkpoint = store.checkpoint
                why = stale(store, firsts[tp], ends[tp])
                if checkpoint is not None and (held is None or checkpoint > held or why):
                    # MongoDB lost what the replica has, or the changelog cannot bring the
                    # replica up to date (`stale`): the replica starts again, and its first
                    # writes replace the location's documents.
                    log.warning(
                        "%s: replica at %s, MongoDB at %s%s: rebuilding",
                        tp,
                        checkpoint,
                        held,
                        f" ({why})" if why else "",
                    )
                    store.reset()
                self.parts[tp] = self._pending(tp.topic, store)
                self.ends[tp] = ends[tp]
                if held is not None and (store.checkpoint or 0) < held:
                    self.must_reach[tp] = held  # write nothing older than MongoDB holds
                start = firsts[tp] if store.checkpoint is None else store.checkpoint
                self.consumer.seek(tp, start)
                log.debug(
                    "%s-%d: following from offset %d (MongoDB at %s, end %d)",
                    tp.topic,
                    tp.partition,
                    start,
                    held,
                    ends[tp],
                )

    def _pending(self, topic: str, store: Store) -> Pending:
        versions = self.sources[topic]
        models: list[tuple[ReadModel, str]] = [
            (m, m.versioned(versions[m.projection])) for m in models_of(versions)
        ]
        return Pending(store, tables_of(versions), models)

    def _close(self, tp: TopicPartition) -> None:
        part = self.parts.pop(tp, None)
        self.must_reach.pop(tp, None)
        if part is not None:
            part.store.close()  # what was read and not written is read again

    # -- aliases, dropped versions, lag ---------------------------------------------------------

    async def _control(self) -> None:
        await self._versions_read.wait()  # nothing is dropped before the versions are known
        while True:
            await asyncio.sleep(CONTROL_SECONDS)
            try:
                await self._subscribe()
                await self._check()
            except (PyMongoError, KafkaError) as exc:
                metrics.count("streams_mongo_sink_errors_total")
                log.warning("sink control: %s", _first_line(exc))

    async def _check(self) -> None:
        now = time.time()
        behind: dict[str, bool] = {}  # topic -> not yet where its changelog ended last check
        for topic, (lag, ends, held) in (await self.lag()).items():
            before = self.caught_up_to.get(topic)
            behind[topic] = before is None or any(held.get(p, 0) < e for p, e in before.items())
            self.caught_up_to[topic] = ends
            # Seconds: the oldest change read and not yet written (it grows while MongoDB is
            # down), else the age at the last write.
            unwritten = [
                part.first_timestamp
                for tp, part in self.parts.items()
                if tp.topic == topic and part.first_timestamp is not None
            ]
            seconds = (
                0.0
                if lag == 0
                else now - min(unwritten) / 1000
                if unwritten
                else self.lag_seconds.get(topic, 0.0)
            )
            for name, version in self.sources.get(topic, {}).items():
                labels = {"projection": name, "version": str(version)}
                metrics.gauge("streams_mongo_sink_lag_records", lag, **labels)
                metrics.gauge("streams_mongo_sink_lag_seconds", round(seconds, 3), **labels)
        aliases = await self.writer.aliases()
        for name in self.projections:
            versions = self.recorded.get(name) or Versions.initial(self.catalog[name])
            serving = versions.serving
            if serving is None or aliases.get(name, {}).get("version") == serving:
                continue
            topic = changelog_topic(versions.group(self.catalog[name], serving))
            # Caught up with where the changelog ended a check ago: the collections hold one
            # version's state, complete to then, and switch together in one write.
            if behind.get(topic, True):
                continue
            await self.writer.point_alias(name, models_of([name]), serving)
            log.info("read models of %s now answer from version %d", name, serving)
            aliases[name] = {
                "collections": {m.collection: m.versioned(serving) for m in models_of([name])}
            }
        await self._drop_unused(aliases)

    async def lag(self) -> dict[str, tuple[int, dict[int, int], dict[int, int]]]:
        """Subscribed topic -> (changelog records MongoDB does not reflect yet, the end of each
        partition, MongoDB's position in each)."""
        out = {}
        for topic in self.subscribed:
            partitions = self.consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in partitions]
            if not tps:
                continue
            ends = {tp.partition: end for tp, end in (await self.consumer.end_offsets(tps)).items()}
            held = await self.writer.positions(topic)
            lag = sum(max(0, end - held.get(p, 0)) for p, end in ends.items())
            out[topic] = (lag, ends, held)
        return out

    async def _drop_unused(self, aliases: Mapping[str, Mapping[str, Any]]) -> None:
        """Collections of versions that no longer exist, and their positions."""
        names = await self.writer.collections()
        # A collection the alias still names stays until the alias moves (a version promoted
        # back, then dropped, answers until the other version has caught up).
        named = {
            collection
            for alias in aliases.values()
            for collection in alias.get("collections", {}).values()
        }
        for name in self.projections:
            versions = self.recorded.get(name) or Versions.initial(self.catalog[name])
            exists = set(versions.all(self.catalog[name]))
            for model in models_of([name]):
                prefix = f"{model.collection}_v"
                for collection in names:
                    version = collection.removeprefix(prefix)
                    if (
                        collection.startswith(prefix)
                        and version.isdigit()
                        and int(version) not in exists
                        and collection not in named
                    ):
                        await self.writer.drop_version(model, int(version))
                        log.info("dropped %s: its version no longer exists", collection)
        for topic in await self.writer.topics():
            if topic not in self.sources:
                await self.writer.forget_topic(topic)


def _first_line(exc: BaseException) -> str:
    """Enough to tell what failed (PyMongo's messages carry the whole topology)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}"
