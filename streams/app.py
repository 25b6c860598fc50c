"""The composition root: builds the Faust app, its topics, tables, agents and HTTP views, in one
visible order."""

from __future__ import annotations

import faust

from streams.ably_sink import create_sink
from streams.agents import contacts, conversations, messages, payments
from streams.agents.family import Topics, install_families
from streams.agents.publisher import install_publisher
from streams.api import install_api
from streams.ingress.http import install_ingress
from streams.ingress.raw_log import RawLog
from streams.realtime_token import install_realtime_token
from streams.settings import Settings
from streams.tables.registry import create_tables
from streams.topics import DERIVED, DLQ, RAW_WEBHOOKS
from streams.web import install_health

__all__ = ["APP_ID", "create_app"]

APP_ID = "streams"
FAMILIES = (
    ("messages", messages),
    ("conversations", conversations),
    ("payments", payments),
    ("contacts", contacts),
)


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    app = faust.App(
        APP_ID,
        broker=[f"kafka://{server}" for server in bootstrap.split(",")],
        store="rocksdb://",
        datadir=str(settings.data_dir / "worker"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_bind=settings.web_host,
        web_host="127.0.0.1" if settings.web_host == "127.0.0.1" else None,
        web_port=settings.web_port,
        # Table pages would expose every table to anyone who can reach the port.
        web_tables_enabled=False,
        autodiscover=False,
    )
    topics = Topics(app, RAW_WEBHOOKS.name, DERIVED.name, DLQ.name)
    tables = create_tables(app, settings.partitions)
    install_families(
        app, topics, [(family, module.TYPES, module.handler(tables)) for family, module in FAMILIES]
    )
    install_publisher(app, topics, create_sink(settings))

    raw_log = RawLog(bootstrap)

    async def stop_raw_log(sender: object, /, *args: object, signal: object, **kw: object) -> None:
        await raw_log.stop()

    app.on_before_shutdown.connect(stop_raw_log)
    install_health(app)
    install_ingress(app, settings, raw_log)
    install_api(app, settings, tables)
    install_realtime_token(app, settings)
    return app
