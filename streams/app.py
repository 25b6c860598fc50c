"""The composition root: builds the Faust app, its web views and agents, in one visible order."""

from __future__ import annotations

import faust

from streams import web
from streams.settings import Settings

__all__ = ["create_app"]

APP_ID = "streams"


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
    web.install(app)
    return app
