"""`streams ingress`: the ingress endpoints in a process of their own, without the worker.

Why: in the worker, verifying and writing webhooks shares one event loop with folding and
publishing, so a busy fold slows HighLevel's deliveries and a burst of webhooks delays
notifications. An ingress process keeps no state (every answer waits for Kafka's
acknowledgement), so any number of them can stand behind a load balancer beside the workers.
The endpoints and their answers are the worker's own (`streams.ingress.http`); `GET /healthz`
answers 200 while the process serves.
"""

from __future__ import annotations

import logging

from aiohttp import web

from streams import event_loop
from streams.ingress.http import install_ingress
from streams.ingress.raw_log import RawLog
from streams.settings import Settings
from streams.web import install_health

__all__ = ["ingress_app", "run_ingress"]

log = logging.getLogger(__name__)


def ingress_app(settings: Settings, raw_log: RawLog) -> web.Application:
    app = web.Application()
    install_ingress(app, settings, raw_log)
    install_health(app, lambda: "ok")  # nothing to join or restore: ready while it serves

    async def stop_raw_log(app: web.Application) -> None:
        await raw_log.stop()

    app.on_cleanup.append(stop_raw_log)
    return app


def run_ingress(settings: Settings, bootstrap: str, port: int) -> int:
    """Serve until SIGTERM or Ctrl-C."""
    log.info("ingress listening on http://%s:%d, writing to %s", settings.web_host, port, bootstrap)
    web.run_app(
        ingress_app(settings, RawLog(bootstrap)),
        host=settings.web_host,
        port=port,
        print=None,
        access_log=None,
        loop=event_loop.new_event_loop(),
    )
    return 0
