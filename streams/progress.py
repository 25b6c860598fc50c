"""Progress of long work as a person expects it: done / total, rate, time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A one-line progress bar on a terminal; a line every few seconds elsewhere (logs, CI)."""

    def __init__(
        self, label: str, total: int, out: TextIO | None = None, every: float = 5.0
    ) -> None:
        self.label, self.total, self.done = label, total, 0
        self.out = out or sys.stderr
        self.started = self._shown = time.monotonic()
        self.every = 0.2 if self.out.isatty() else every

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown >= self.every:
            self._shown = now
            self._show(final=False)

    def update(self, done: int, total: int) -> None:
        """Absolute progress, for work whose total grows while it runs (a replay of a live log)."""
        self.total = total
        self.advance(done - self.done)

    def finish(self) -> None:
        self._show(final=True)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 and self.total > self.done else 0.0
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        return (
            f"{self.label} [{bar:<30}] {self.done}/{self.total} {share:6.1%} "
            f"{rate:,.0f}/s, {_duration(left)} left"
        )

    def _show(self, final: bool) -> None:
        if self.out.isatty():
            self.out.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.out.write(self.line() + "\n")
        self.out.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
