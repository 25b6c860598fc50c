"""`streams sink mongo` (the sink alone) and `streams sink status` (how far behind it is)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams import event_loop
from streams.mongo_sink.documents import SINKABLE, check_projections, models_of
from streams.replay.control import read_versions
from streams.runtime.changelog import reader
from streams.settings import Secret, Settings, comma_separated
from streams.tables.projection import Projection
from streams.topics import partition_ids, ready_kafka

if TYPE_CHECKING:
    from streams.mongo_sink.writer import ReadModelWriter

__all__ = ["add_commands", "sink_lag"]


def add_commands(sub: Any, catalog: Sequence[Projection]) -> None:
    sink = sub.add_parser("sink", help="keep projections' read models current in MongoDB")
    commands = sink.add_subparsers(required=True, metavar="SINK")
    mongo = commands.add_parser("mongo", help="run the MongoDB sink on its own")
    status = commands.add_parser("status", help="each read model's lag in records and seconds")
    for command in (mongo, status):
        command.add_argument("--uri", help="MongoDB URI (default: STREAMS_MONGO_SINK_URI)")
        command.add_argument("--db", help="the database (default: STREAMS_MONGO_SINK_DB, streams)")
        command.add_argument(
            "--projections",
            help=f"comma-separated, of {','.join(SINKABLE)} "
            "(default: STREAMS_MONGO_SINK_PROJECTIONS, else all of them)",
        )
    mongo.add_argument("--metrics-port", type=int, help="serve GET /metrics on this port")
    mongo.set_defaults(command=partial(_run, catalog))
    status.set_defaults(command=partial(_status, catalog))


def _chosen(settings: Settings, args: argparse.Namespace) -> tuple[Secret, str, tuple[str, ...]]:
    uri = Secret(args.uri) if args.uri else settings.mongo_sink_uri
    if uri is None:
        raise ValueError("no MongoDB: pass --uri or set STREAMS_MONGO_SINK_URI")
    names = comma_separated(args.projections) or settings.mongo_sink_projections
    check_projections(names)
    return uri, args.db or settings.mongo_sink_database, names


def _run(catalog: Sequence[Projection], settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from streams.app import mongo_sink  # the composition root builds it, as for the worker
    from streams.web import install_metrics

    uri, database, names = _chosen(settings, args)

    async def run() -> int:
        sink = mongo_sink(settings, await ready_kafka(settings), catalog, uri, database, names)
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
        runner = None
        if args.metrics_port:
            app = web.Application()
            install_metrics(app)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", args.metrics_port).start()
        running = asyncio.ensure_future(sink.run())
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([running, stop], return_when=asyncio.FIRST_COMPLETED)
        for task in (running, stop):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running  # raises what stopped it, if anything did
        if runner is not None:
            await runner.cleanup()
        return 0

    return event_loop.run(run())


async def sink_lag(
    bootstrap: str, uri: Secret, database: str, names: Sequence[str], catalog: Sequence[Projection]
) -> list[dict[str, Any]]:
    """Each (projection, version, read model): its collection, whether the alias names it, and
    how far MongoDB is behind its changelog, in records and in seconds (the age of the oldest
    change not yet written)."""
    from streams.mongo_sink.sink import mongo_client, sources  # PyMongo: see streams.app
    from streams.mongo_sink.writer import ReadModelWriter

    by_name = {p.name: p for p in catalog}
    chosen = names or SINKABLE
    found = sources(await read_versions(bootstrap), chosen, by_name)
    client = mongo_client(uri)
    consumer = reader(bootstrap)
    # The partitions of each changelog: a consumer that subscribes to nothing knows none
    # (`partitions_for_topic` answered None, and every lag read 0 until 2026-12-08).
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    rows = []
    try:
        writer = ReadModelWriter(client[database])
        aliases = await writer.aliases()
        for topic, versions in sorted(found.items()):
            partitions = await partition_ids(admin, topic)  # none while it does not exist
            records, seconds = await _topic_lag(consumer, writer, topic, partitions)
            for name, version in sorted(versions.items()):
                for model in models_of([name]):
                    named = aliases.get(name, {}).get("collections", {})
                    answering = named.get(model.collection)
                    rows.append(
                        {
                            "projection": name,
                            "version": version,
                            "collection": model.versioned(version),
                            "answering": answering == model.versioned(version),
                            "lag_records": records,
                            "lag_seconds": seconds,
                        }
                    )
    finally:
        await admin.close()
        await consumer.stop()
        await client.close()
    return rows


async def _topic_lag(
    consumer: AIOKafkaConsumer, writer: ReadModelWriter, topic: str, partitions: list[int]
) -> tuple[int, float]:
    if not partitions:
        return 0, 0.0
    tps = [TopicPartition(topic, p) for p in partitions]
    ends = await consumer.end_offsets(tps)
    held = await writer.positions(topic)
    records, oldest = 0, None
    for tp in tps:
        behind = ends[tp] - held.get(tp.partition, 0)
        if behind <= 0:
            continue
        records += behind
        consumer.assign([tp])
        consumer.seek(tp, held.get(tp.partition, 0))
        fetched = (await consumer.getmany(tp, timeout_ms=2000, max_records=1)).get(tp, [])
        if fetched:
            oldest = min(oldest or fetched[0].timestamp, fetched[0].timestamp)
    seconds = 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)
    return records, round(seconds, 1)


def _status(catalog: Sequence[Projection], settings: Settings, args: argparse.Namespace) -> int:
    uri, database, names = _chosen(settings, args)

    async def run() -> list[dict[str, Any]]:
        return await sink_lag(await ready_kafka(settings), uri, database, names, catalog)

    rows = event_loop.run(run())
    print(f"{'collection':<28} {'answers':<8} {'lag (records)':>14} {'lag (s)':>8}")
    for row in rows:
        print(
            f"{row['collection']:<28} {'yes' if row['answering'] else '':<8} "
            f"{row['lag_records']:>14,} {row['lag_seconds']:>8.1f}"
        )
    return 0
