"""A replay worker: version N of one projection, folded from offset 0 of the raw log.

Its own Faust app (`streams-{projection}-v{N}`: consumer group, changelog topics, data directory),
one agent applying the projection's folds to every record it reads, and the projection's query
view. It never writes derived events or dead letters: a record the folds cannot use was
dead-lettered by the live worker already (or will be, for a projection added later, only by
replays: it is logged and counted in `streams_replay_bad_records_total`).
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import faust

from streams import metrics
from streams.agents.family import CONTENT_ERRORS, bytes_topic, headers_and_type, with_retries
from streams.api import QUERIES, install_api
from streams.dlq import redriven_for
from streams.events import Event
from streams.faust_config import new_faust_app
from streams.replay.versions import unit_id
from streams.settings import Settings
from streams.tables.projection import Projection, Tables
from streams.tables.registry import create_tables
from streams.topics import RAW_WEBHOOKS
from streams.web import install_health

__all__ = ["create_replay_app", "replay_dir"]

log = logging.getLogger(__name__)

REPLAY_LINGER = 0.05


def replay_dir(settings: Settings, name: str, version: int) -> Path:
    return settings.data_dir / "replay" / unit_id(name, version)


def create_replay_app(
    settings: Settings, bootstrap: str, projection: Projection, version: int, web_port: int
) -> faust.App:
    datadir = replay_dir(settings, projection.name, version)
    datadir.mkdir(parents=True, exist_ok=True)
    app = new_faust_app(
        settings,
        bootstrap,
        unit_id(projection.name, version),
        datadir=datadir,
        web_port=web_port,
        # Nobody waits on a replay's changelog writes: batch them (measured: about twice the
        # records per second of no linger, on a quiet machine).
        linger=REPLAY_LINGER,
    )
    tables = create_tables(app, projection.tables, settings.partitions)
    install_replay_agent(app, projection, version, tables)
    install_health(app)
    install_api(
        app, settings, tables, kinds=[k for k in QUERIES if k == projection.name], version=version
    )
    return app


def install_replay_agent(
    app: faust.App, projection: Projection, version: int, tables: Tables
) -> None:
    wanted = projection.types

    async def replay(stream: faust.StreamT) -> None:
        async for record in stream.events():
            message = record.message
            headers, kind = headers_and_type(message)
            if kind not in wanted:
                continue
            try:
                event = Event.from_record(message.value, headers, message.partition, message.offset)
                await with_retries(
                    partial(projection.update, tables, redriven_for=redriven_for(headers)),
                    event,
                    f"replay {projection.name} v{version}",
                )
            except CONTENT_ERRORS as exc:
                log.warning(
                    "replay %s v%d: record %s:%s skipped: %s",
                    projection.name,
                    version,
                    message.partition,
                    message.offset,
                    exc,
                )
                metrics.count(
                    "streams_replay_bad_records_total",
                    projection=projection.name,
                    version=str(version),
                )
                continue
            metrics.count(
                "streams_replay_records_total", projection=projection.name, version=str(version)
            )

    app.agent(bytes_topic(app, RAW_WEBHOOKS.name), name=f"streams.replay.{projection.name}")(replay)
