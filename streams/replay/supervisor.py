"""In every live worker: a replay worker process for each run of replayed versions on the
versions topic (`streams.replay.versions`), and which version answers each projection's queries.

Each replay worker is this same program run as `replay-worker RUN N NAME...` (so a build that
adds projections runs its own), on a free local port, dying with its parent. One that exits is
started again after a pause; one whose run no projection needs any more is stopped and its local
state deleted. With several live workers, each runs one member of every run's consumer group, so
a replay spreads over the workers as the live projections do.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streams.api import NotServing
from streams.processes import die_with_parent, free_port
from streams.replay.app import replay_dir
from streams.replay.control import watch_versions
from streams.replay.versions import LIVE_VERSION, Run, Versions, runs_wanted
from streams.settings import Settings
from streams.tables.projection import Projection

__all__ = ["Supervisor", "this_program"]

log = logging.getLogger(__name__)

RESTART_PAUSE = 5.0  # seconds before a replay worker that exited is started again
STOP_GRACE = 30.0  # seconds a stopped replay worker gets before SIGKILL

RunId = str  # a run's consumer group


def this_program() -> list[str]:
    """The command that runs this same program again: `streams`, or a script built on it."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is not None and spec.name:
        return [sys.executable, "-m", spec.name]
    return [sys.executable, str(Path(sys.argv[0]).resolve())]


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    port: int
    stopping_since: float | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def running(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        catalog: Sequence[Projection],
        command: Sequence[str],
    ) -> None:
        self.settings, self.bootstrap, self.command = settings, bootstrap, list(command)
        self.catalog = {p.name: p for p in catalog}
        self.versions: dict[str, Versions] = {}
        self.children: dict[RunId, _Child] = {}
        self.stopping: dict[RunId, _Child] = {}
        self.exited: dict[RunId, float] = {}
        self.known = False  # whether the versions topic has been read to its end once

    def serving(self, name: str) -> str | None:
        """None when the live tables answer `name`'s queries, else the local replay worker's URL."""
        projection = self.catalog[name]
        versions = self.versions.get(name, Versions.initial(projection))
        version = versions.serving
        if version is None:
            raise NotServing(f"no version of {name} serves queries yet (streams replay promote)")
        if projection.live and version == LIVE_VERSION:
            return None
        child = self.children.get(versions.group(projection, version))
        if child is None or not child.running:
            raise NotServing(
                f"version {version} of {name} serves queries but its replay worker is not "
                "running here yet; retry shortly"
            )
        return f"http://127.0.0.1:{child.port}"

    async def run(self) -> None:
        async def reconcile_often() -> None:
            while True:
                await asyncio.sleep(1.0)
                self.reconcile()

        ticker = asyncio.ensure_future(reconcile_often())
        try:
            async for versions in watch_versions(self.bootstrap):
                self.versions, self.known = versions, True
                self.reconcile()
        finally:
            ticker.cancel()
            self.stop_all()

    def wanted(self) -> dict[RunId, Run]:
        return {run.id: run for run in runs_wanted(self.versions, self.catalog)}

    def reconcile(self) -> None:
        if not self.known:
            return
        wanted = self.wanted()
        for run in set(self.children) - set(wanted):
            child = self.children.pop(run)
            log.info("replay run %s was dropped: stopping its replay worker", run)
            child.process.send_signal(signal.SIGTERM)
            child.stopping_since = time.monotonic()
            self.stopping[run] = child
        self._finish_stopping(set(wanted))
        for run, spec in sorted(wanted.items()):
            current = self.children.get(run)
            if current is not None and current.running:
                continue
            if current is not None:
                log.warning("replay run %s: replay worker exited (%s)", run, current.process.poll())
                del self.children[run]
                self.exited[run] = time.monotonic()
            if time.monotonic() - self.exited.get(run, -RESTART_PAUSE) < RESTART_PAUSE:
                continue
            if run in self.stopping:
                continue  # a previous run of it is still shutting down
            self.children[run] = self._start(spec)

    def _finish_stopping(self, wanted: set[RunId]) -> None:
        for run, child in list(self.stopping.items()):
            if child.running and time.monotonic() - (child.stopping_since or 0) > STOP_GRACE:
                child.process.kill()
            if child.running:
                continue
            del self.stopping[run]
            if run not in wanted:
                shutil.rmtree(replay_dir(self.settings, run), ignore_errors=True)
        # State of runs dropped while this worker was not running.
        root = self.settings.data_dir / "replay"
        keep = wanted | set(self.stopping) | set(self.children)
        for path in root.glob("streams-*-v*") if root.exists() else ():
            if path.name not in keep:
                log.info("deleting the local state of dropped run %s", path.name)
                shutil.rmtree(path, ignore_errors=True)

    def _start(self, run: Run) -> _Child:
        port = free_port()
        names = ", ".join(run.projections)
        log.info("replay run %s (%s v%d): starting on port %d", run.id, names, run.version, port)
        process = subprocess.Popen(
            [
                *self.command,
                "replay-worker",
                run.id,
                str(run.version),
                *run.projections,
                "--web-port",
                str(port),
            ],
            preexec_fn=die_with_parent,
        )
        return _Child(process, port)

    def stop_all(self) -> None:
        children = [*self.children.values(), *self.stopping.values()]
        for child in children:
            if child.running:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
        self.children.clear()
        self.stopping.clear()
