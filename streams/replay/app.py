"""A replay worker: version N of one projection, folded from offset 0 of the raw log.

The same loop as the live worker (`streams.runtime`), with its own consumer group, changelog and
data directory (`streams-{projection}-v{N}`), the projection's folds as its only families, and no
output: a record the folds cannot use was dead-lettered by the live worker already (or, for a
projection added later, is logged and counted in `streams_replay_bad_records_total`). Its web
server answers the projection's queries, and 503 for a partition it has not restored yet.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from streams.agents.family import projection_families
from streams.api import QUERIES, install_api
from streams.replay.versions import unit_id
from streams.runtime.changelog import changelog_topic
from streams.runtime.loop import Loop
from streams.runtime.ownership import Placement
from streams.runtime.task import TaskConfig
from streams.settings import Settings
from streams.tables.projection import Projection
from streams.topics import DERIVED, DLQ, RAW_WEBHOOKS
from streams.web import install_health
from streams.worker import Worker, worker_url

__all__ = ["create_replay_worker", "replay_dir"]


def replay_dir(settings: Settings, name: str, version: int) -> Path:
    return settings.data_dir / "replay" / unit_id(name, version)


def create_replay_worker(
    settings: Settings, bootstrap: str, projection: Projection, version: int, web_port: int
) -> Worker:
    group = unit_id(projection.name, version)
    placement = Placement(worker_url(settings, web_port))
    config = TaskConfig(
        bootstrap=bootstrap,
        group=group,
        source_topic=RAW_WEBHOOKS.name,
        changelog_topic=changelog_topic(group),
        derived_topic=DERIVED.name,  # never written: a replay emits nothing
        dead_letter_topic=DLQ.name,
        data_dir=replay_dir(settings, projection.name, version),
        tables=projection.tables,
        families=projection_families(projection.folds),
        live=False,
        label=f"{projection.name} v{version}",
    )
    loop = Loop(config, placement, replication_factor=settings.replication_factor)
    app = web.Application()
    install_health(app, loop.status)
    install_api(
        app,
        settings,
        placement,
        kinds=[k for k in QUERIES if k == projection.name],
        version=version,
    )
    return Worker(loop, app, settings.web_host, web_port)
