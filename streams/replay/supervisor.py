"""In every live worker: a replay worker process for each replayed version on the versions topic,
and which version answers each projection's queries.

Each replay worker is this same program run as `replay-worker NAME N` (so a build that adds
projections runs its own), on a free local port, dying with its parent. One that exits is started
again after a pause; one whose version is dropped is stopped and its local state deleted. With
several live workers, each runs one member of every version's consumer group, so a replay spreads
over the workers as the live projections do.
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
from streams.replay.versions import LIVE_VERSION, Versions, unit_id
from streams.settings import Settings
from streams.tables.projection import Projection

__all__ = ["Supervisor", "this_program"]

log = logging.getLogger(__name__)

RESTART_PAUSE = 5.0  # seconds before a replay worker that exited is started again
STOP_GRACE = 30.0  # seconds a stopped replay worker gets before SIGKILL

Unit = tuple[str, int]


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
        self.children: dict[Unit, _Child] = {}
        self.stopping: dict[Unit, _Child] = {}
        self.exited: dict[Unit, float] = {}
        self.known = False  # whether the versions topic has been read to its end once

    def serving(self, name: str) -> str | None:
        """None when the live tables answer `name`'s queries, else the local replay worker's URL."""
        projection = self.catalog[name]
        version = self.versions.get(name, Versions.initial(projection)).serving
        if version is None:
            raise NotServing(f"no version of {name} serves queries yet (streams replay promote)")
        if projection.live and version == LIVE_VERSION:
            return None
        child = self.children.get((name, version))
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

    def wanted(self) -> set[Unit]:
        units: set[Unit] = set()
        for name, versions in self.versions.items():
            if name not in self.catalog:
                continue  # recorded by a build that knows it; this one cannot compute it
            units.update((name, v) for v in versions.replays)
        return units

    def reconcile(self) -> None:
        if not self.known:
            return
        wanted = self.wanted()
        for unit in set(self.children) - wanted:
            child = self.children.pop(unit)
            log.info("replay %s v%d was dropped: stopping its replay worker", *unit)
            child.process.send_signal(signal.SIGTERM)
            child.stopping_since = time.monotonic()
            self.stopping[unit] = child
        self._finish_stopping(wanted)
        for unit in sorted(wanted):
            current = self.children.get(unit)
            if current is not None and current.running:
                continue
            if current is not None:
                log.warning(
                    "replay %s v%d: replay worker exited (%s)", *unit, current.process.poll()
                )
                del self.children[unit]
                self.exited[unit] = time.monotonic()
            if time.monotonic() - self.exited.get(unit, -RESTART_PAUSE) < RESTART_PAUSE:
                continue
            if unit in self.stopping:
                continue  # a previous run of it is still shutting down
            self.children[unit] = self._start(*unit)

    def _finish_stopping(self, wanted: set[Unit]) -> None:
        for unit, child in list(self.stopping.items()):
            if child.running and time.monotonic() - (child.stopping_since or 0) > STOP_GRACE:
                child.process.kill()
            if child.running:
                continue
            del self.stopping[unit]
            if unit not in wanted:
                shutil.rmtree(replay_dir(self.settings, *unit), ignore_errors=True)
        # State of versions dropped while this worker was not running.
        root = self.settings.data_dir / "replay"
        keep = {unit_id(*u) for u in wanted | set(self.stopping) | set(self.children)}
        for path in root.glob("streams-*-v*") if root.exists() else ():
            if path.name not in keep:
                log.info("deleting the local state of dropped version %s", path.name)
                shutil.rmtree(path, ignore_errors=True)

    def _start(self, name: str, version: int) -> _Child:
        port = free_port()
        log.info("replay %s v%d: starting its replay worker on port %d", name, version, port)
        process = subprocess.Popen(
            [*self.command, "replay-worker", name, str(version), "--web-port", str(port)],
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
