"""The composition root: builds the live worker (its loop, tables, families, web routes and
services) in one visible order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from streams.ably_sink import create_sink
from streams.agents import (
    activity,
    app_lifecycle,
    appointments,
    campaigns,
    contacts,
    conversations,
    email_stats,
    first_party,
    messages,
    opportunities,
    payments,
    tasks,
    users,
)
from streams.agents.app_lifecycle import unless_uninstalled
from streams.agents.family import Family, Handler
from streams.agents.publisher import publisher
from streams.agents.reminders import TICK_SECONDS, reminder_tick
from streams.api import install_api
from streams.dashboard import install_dashboard
from streams.health import HealthFigures, health_publisher
from streams.ingress.http import install_ingress
from streams.ingress.raw_log import RawLog
from streams.mongo_sink.documents import SINKABLE
from streams.realtime_token import install_realtime_token
from streams.replay.supervisor import Supervisor, this_program
from streams.replay.versions import LIVE_GROUP
from streams.runtime.changelog import changelog_topic
from streams.runtime.loop import Loop
from streams.runtime.ownership import Placement, lasting_name
from streams.runtime.task import TaskConfig
from streams.settings import Secret, Settings
from streams.tables.projection import Projection, Tables
from streams.tables.registry import LIVE_TABLES, PROJECTIONS
from streams.topics import DERIVED, DLQ, RAW_WEBHOOKS
from streams.web import install_health
from streams.worker import Worker
from streams.worker_url import worker_url

if TYPE_CHECKING:
    from streams.mongo_sink.sink import MongoSink

__all__ = ["APP_ID", "FAMILIES", "create_worker", "live_families", "mongo_sink"]

APP_ID = LIVE_GROUP  # the live worker's consumer group, and its changelog's prefix
FAMILIES = (
    ("messages", messages),
    ("conversations", conversations),
    ("payments", payments),
    ("contacts", contacts),
    ("opportunities", opportunities),
    ("appointments", appointments),
    ("tasks", tasks),
    ("email_stats", email_stats),
    ("campaigns", campaigns),
    ("app_lifecycle", app_lifecycle),
    ("users", users),
    ("first_party", first_party),
    ("activity", activity),
)


def _notifying_installed(make_handler: Callable[[Tables], Handler], tables: Tables) -> Handler:
    # A location that uninstalled the app is still folded, but notifies nobody.
    return unless_uninstalled(tables, make_handler(tables))


def live_families() -> list[Family]:
    """The families the live worker runs, in order: each module's types and handler."""
    return [
        (family, module.TYPES, partial(_notifying_installed, module.handler))
        for family, module in FAMILIES
    ]


def mongo_sink(
    settings: Settings,
    bootstrap: str,
    catalog: Sequence[Projection] = PROJECTIONS,
    uri: Secret | None = None,
    database: str | None = None,
    projections: Sequence[str] = (),
) -> MongoSink:
    """The MongoDB read models' sink, from the settings unless given."""
    # Imported here: PyMongo adds 0.13 to 0.3 s to a process's start, which one without the sink
    # (most workers, the ingress, every other command) need not pay at start.
    from streams.mongo_sink.sink import MongoSink

    chosen = projections or settings.mongo_sink_projections or SINKABLE
    sink_uri = uri or settings.mongo_sink_uri
    if sink_uri is None:
        raise ValueError("a MongoDB URI is required: --uri or STREAMS_MONGO_SINK_URI")
    return MongoSink(
        bootstrap,
        sink_uri,
        database or settings.mongo_sink_database,
        tuple(chosen),
        settings.data_dir / "mongo-sink",
        {p.name: p for p in catalog},
    )


def create_worker(
    settings: Settings,
    bootstrap: str,
    catalog: Sequence[Projection] = PROJECTIONS,
    command: Sequence[str] | None = None,
) -> Worker:
    """The live worker. `catalog` is every projection this build can replay; `command` runs
    this program again (for replay workers; default: the running one)."""
    placement = Placement(worker_url(settings, settings.web_port))
    config = TaskConfig(
        bootstrap=bootstrap,
        group=APP_ID,
        source_topic=RAW_WEBHOOKS.name,
        changelog_topic=changelog_topic(APP_ID),
        derived_topic=DERIVED.name,
        dead_letter_topic=DLQ.name,
        data_dir=settings.data_dir / "worker",
        tables=LIVE_TABLES,
        families=live_families(),
        live=True,
        label=APP_ID,
    )
    loop = Loop(
        config,
        placement,
        replication_factor=settings.replication_factor,
        tick=reminder_tick(
            settings.reminder_lead_seconds, lambda: placement.partitions or settings.partitions
        ),
        tick_seconds=TICK_SECONDS,
        instance_id=lasting_name(settings.data_dir / "worker", APP_ID),
        leave_on_stop=settings.leave_group_on_stop,
    )
    raw_log = RawLog(bootstrap)
    replays = Supervisor(settings, bootstrap, catalog, command or this_program())
    sink = create_sink(settings)
    services = [publisher(sink, bootstrap, settings.ably_channel_rate), replays.run]
    if settings.ably_api_key is not None:  # without Ably there is nobody to tell
        figures = HealthFigures(placement.url, loop.lag, loop.last_received)
        services.append(health_publisher(sink, figures))
    if settings.mongo_sink_uri is not None:
        services.append(mongo_sink(settings, bootstrap, catalog).run)
    app = web.Application()
    install_health(app, loop.status)
    install_ingress(app, settings, raw_log)
    install_api(app, settings, placement, serving=replays.serving)
    install_realtime_token(app, settings)
    install_dashboard(app, settings)
    return Worker(
        loop,
        app,
        settings.web_host,
        settings.web_port,
        services=services,
        cleanups=[raw_log.stop],
    )
