"""The composition root: builds the Faust app, its topics, tables, agents and HTTP views, in one
visible order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import cast

import faust
from faust.types import TP

from streams.ably_sink import create_sink
from streams.agents import (
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
from streams.agents.effects import Effects, flush_changelogs
from streams.agents.family import Handler, Topics, install_families
from streams.agents.publisher import install_publisher
from streams.agents.reminders import install_reminders
from streams.api import install_api
from streams.faust_config import new_faust_app
from streams.ingress.http import install_ingress
from streams.ingress.raw_log import RawLog
from streams.realtime_token import install_realtime_token
from streams.replay.supervisor import Supervisor, this_program
from streams.settings import Settings
from streams.tables.projection import Projection, Tables
from streams.tables.registry import LIVE_TABLES, PROJECTIONS, create_tables
from streams.topics import DERIVED, DLQ, RAW_WEBHOOKS
from streams.web import install_health

__all__ = ["APP_ID", "create_app"]

APP_ID = "streams"
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
)


def _notifying_installed(make_handler: Callable[[Tables], Handler], tables: Tables) -> Handler:
    # A location that uninstalled the app is still folded, but notifies nobody.
    return unless_uninstalled(tables, make_handler(tables))


def create_app(
    settings: Settings,
    bootstrap: str,
    catalog: Sequence[Projection] = PROJECTIONS,
    command: Sequence[str] | None = None,
) -> faust.App:
    """The live worker. `catalog` is every projection this build can replay; `command` runs
    this program again (for replay workers; default: the running one)."""
    app = new_faust_app(
        settings,
        bootstrap,
        APP_ID,
        datadir=settings.data_dir / "worker",
        web_port=settings.web_port,
    )
    topics = Topics(app, RAW_WEBHOOKS.name, DERIVED.name, DLQ.name)
    tables = create_tables(app, LIVE_TABLES, settings.partitions)
    effects = Effects(bootstrap, DERIVED.name, tables, partial(flush_changelogs, app.producer))

    async def forget(sender: object, /, *args: object, signal: object, **kw: object) -> None:
        (revoked,) = cast(tuple[set[TP]], args)
        effects.forget(tp.partition for tp in revoked)

    async def stop_effects(sender: object, /, *args: object, **kw: object) -> None:
        await effects.stop()

    app.on_partitions_revoked.connect(forget)
    app.on_before_shutdown.connect(stop_effects)
    install_families(
        app,
        topics,
        [
            (family, module.TYPES, partial(_notifying_installed, module.handler))
            for family, module in FAMILIES
        ],
        tables,
        effects,
    )
    install_reminders(app, tables, settings, effects)
    install_publisher(app, topics, create_sink(settings), bootstrap)

    raw_log = RawLog(bootstrap)

    async def stop_raw_log(sender: object, /, *args: object, signal: object, **kw: object) -> None:
        await raw_log.stop()

    app.on_before_shutdown.connect(stop_raw_log)
    install_health(app)
    install_ingress(app, settings, raw_log)
    replays = Supervisor(settings, bootstrap, catalog, command or this_program())

    async def run_replays() -> None:
        await replays.run()

    app.task(run_replays)
    install_api(app, settings, tables, serving=replays.serving)
    install_realtime_token(app, settings)
    return app
