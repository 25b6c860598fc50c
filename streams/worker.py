"""A worker process: the runtime's loop, a web server, and the services beside them, run until a
signal or until the loop says the worker must stop.

Exit status: 0 after SIGTERM or Ctrl-C; `EXIT_TRANSIENT_FAILURE` when the loop stopped the
worker without committing (its supervisor restarts it, and it folds again from the committed
offsets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from streams import event_loop
from streams.runtime.loop import Loop, StopWorker

__all__ = ["EXIT_TRANSIENT_FAILURE", "Worker", "run_worker"]

log = logging.getLogger(__name__)

EXIT_TRANSIENT_FAILURE = 75  # EX_TEMPFAIL: restart me
STOP_GRACE = 10.0  # seconds the services get to finish when the worker stops


@dataclass
class Worker:
    loop: Loop
    web: web.Application
    host: str
    port: int
    # Run beside the loop until the worker stops (the publisher, the replay supervisor).
    services: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Run once the loop and the services have stopped.
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def run_worker(worker: Worker) -> int:
    return event_loop.run(_run(worker))


async def _run(worker: Worker) -> int:
    stopping = asyncio.Event()
    running = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(sig, stopping.set)
    runner = web.AppRunner(worker.web, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, worker.host, worker.port)
    await site.start()
    log.info("worker listening on http://%s:%d", worker.host, worker.port)
    loop_task = asyncio.ensure_future(worker.loop.run())
    services = [asyncio.ensure_future(service()) for service in worker.services]
    stop_wait = asyncio.ensure_future(stopping.wait())
    status = 0
    try:
        await asyncio.wait([loop_task, stop_wait, *services], return_when=asyncio.FIRST_COMPLETED)
        if loop_task.done():
            exc = loop_task.exception()
            if isinstance(exc, StopWorker):
                log.critical("%s; stopping the worker without committing", exc)
            else:
                log.critical("the loop ended: %r; stopping the worker", exc)
            status = EXIT_TRANSIENT_FAILURE
        elif not stop_wait.done():
            # A service runs as long as the worker: one that ended is a fault (its supervisor
            # restarts the worker, and the service with it).
            ended = next(s for s in services if s.done())
            exc = None if ended.cancelled() else ended.exception()
            log.critical("a service ended: %r; stopping the worker", exc, exc_info=exc)
            status = EXIT_TRANSIENT_FAILURE
    finally:
        if status != 0:  # a fault: its supervisor restarts the worker, as the same member
            worker.loop.leave_on_stop = False
        for task in [loop_task, *services, stop_wait]:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(loop_task, *services, return_exceptions=True), STOP_GRACE
            )
        for cleanup in worker.cleanups:
            try:
                await cleanup()
            except Exception:
                log.exception("clean-up failed")
        await runner.cleanup()
    return status
