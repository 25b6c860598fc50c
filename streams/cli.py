"""The `streams` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import faust

from streams.app import create_app
from streams.broker import BrokerError, LocalKafka, recorded_bootstrap
from streams.settings import Settings
from streams.topics import TOPICS, ensure_topics

__all__ = ["main"]

log = logging.getLogger("streams")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        return int(args.command(settings, args) or 0)
    except (BrokerError, ValueError) as exc:
        print(f"streams: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser(
        "dev", help="start the embedded stack: a local Kafka broker and the worker (make run)"
    ).set_defaults(command=_dev)
    sub.add_parser(
        "worker", help="run a worker against STREAMS_KAFKA_BOOTSTRAP (or the embedded broker)"
    ).set_defaults(command=_worker)
    sub.add_parser(
        "topics", help="create the project's topics if missing and list them"
    ).set_defaults(command=_topics)
    return parser


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    broker = None
    if settings.embedded:
        broker = LocalKafka(settings.data_dir / "kafka", libs=settings.kafka_libs)
        broker.start()
    try:
        if broker is not None:
            seconds = loop.run_until_complete(broker.wait_ready())
            log.info("embedded Kafka ready at %s in %.1fs", broker.bootstrap, seconds)
        return _run_worker(settings, _bootstrap(settings), loop)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded Kafka stopped")


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return _run_worker(settings, _bootstrap(settings), loop)


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    created = asyncio.run(
        ensure_topics(
            _bootstrap(settings),
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
        )
    )
    for topic in TOPICS:
        state = "created" if topic.name in created else "exists"
        print(f"{topic.name:24} {state:8} key: {topic.key}")
    return 0


def _run_worker(settings: Settings, bootstrap: str, loop: asyncio.AbstractEventLoop) -> int:
    loop.run_until_complete(
        ensure_topics(
            bootstrap,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
        )
    )
    app = create_app(settings, bootstrap)
    worker = faust.Worker(app, loglevel="INFO", loop=loop)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def _bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    recorded = recorded_bootstrap(settings.data_dir / "kafka")
    if recorded is None:
        raise BrokerError(
            f"no Kafka: set STREAMS_KAFKA_BOOTSTRAP, or start the embedded stack "
            f"(`make run` / `streams dev`) with STREAMS_DATA_DIR={settings.data_dir}"
        )
    return recorded
