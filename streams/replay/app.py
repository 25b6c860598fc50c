"""A replay worker: one run (`streams.replay.versions`), version N of the projections started
together, folded from offset 0 of the raw log in one pass.

The same loop as the live worker (`streams.runtime`), with the run's own consumer group,
changelog and data directory (`streams-{projection}-v{N}`, `streams-all-v{N}`...), the
projections' folds as its only families, and no output: a record the folds cannot use was dead-lettered by the live worker already (or, for a
projection added later, is logged and counted in `streams_replay_bad_records_total`). Its web
server answers the projections' queries, and 503 for a partition it has not restored yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from streams.agents.family import projection_families
from streams.api import QUERIES, install_api
from streams.runtime.changelog import changelog_topic
from streams.runtime.loop import Loop
from streams.runtime.ownership import Placement
from streams.runtime.task import TaskConfig
from streams.settings import Settings
from streams.tables.projection import Projection
from streams.topics import DERIVED, DLQ, RAW_WEBHOOKS
from streams.web import install_health
from streams.worker import Worker
from streams.worker_url import worker_url

__all__ = ["create_replay_worker", "replay_dir"]


def replay_dir(settings: Settings, run: str) -> Path:
    return settings.data_dir / "replay" / run


def create_replay_worker(
    settings: Settings,
    bootstrap: str,
    run: str,
    version: int,
    projections: Sequence[Projection],
    web_port: int,
) -> Worker:
    group = run
    names = [p.name for p in projections]
    placement = Placement(worker_url(settings, web_port))
    config = TaskConfig(
        bootstrap=bootstrap,
        group=group,
        source_topic=RAW_WEBHOOKS.name,
        changelog_topic=changelog_topic(group),
        derived_topic=DERIVED.name,  # never written: a replay emits nothing
        dead_letter_topic=DLQ.name,
        data_dir=replay_dir(settings, run),
        tables=tuple(dict.fromkeys(t for p in projections for t in p.tables)),
        # A fold two projections share (a table both read) runs once.
        families=projection_families(list(dict.fromkeys(f for p in projections for f in p.folds))),
        live=False,
        label=f"{', '.join(names)} v{version}",
    )
    loop = Loop(config, placement, replication_factor=settings.replication_factor)
    app = web.Application()
    install_health(app, loop.status)
    install_api(
        app,
        settings,
        placement,
        kinds=[k for k in QUERIES if k in names],
        version=version,
    )
    return Worker(loop, app, settings.web_host, web_port)
