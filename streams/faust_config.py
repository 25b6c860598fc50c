"""The one place that configures a Faust app, for the live worker and the replay workers alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust

from streams import faust_recovery
from streams.settings import Settings

__all__ = ["new_faust_app", "run_worker"]


def new_faust_app(
    settings: Settings,
    bootstrap: str,
    app_id: str,
    *,
    datadir: Path,
    web_port: int,
    linger: float = 0.0,
) -> faust.App:
    """`linger`: seconds the producer waits to batch records (changelog writes, derived
    events); more batching costs that much latency."""
    faust_recovery.install()
    return faust.App(
        app_id,
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        store="rocksdb://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # A new consumer group (a replay) starts from the first record of the log.
        consumer_auto_offset_reset="earliest",
        web_bind=settings.web_host,
        web_host="127.0.0.1" if settings.web_host == "127.0.0.1" else None,
        web_port=web_port,
        # Table pages would expose every table to anyone who can reach the port.
        web_tables_enabled=False,
        autodiscover=False,
        producer_linger=linger,
    )


def run_worker(app: faust.App, loop: asyncio.AbstractEventLoop) -> int:
    """Run `app` until it is stopped (SIGTERM, Ctrl-C); its exit status."""
    worker = faust.Worker(app, loglevel="INFO", loop=loop)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
