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
        self.details: list[str] = []  # lines shown under the bar (per partition...)
        self._drawn = 0  # lines of the block last drawn on the terminal

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown >= self.every:
            self._shown = now
            self._show(final=False)

    def update(self, done: int, total: int, details: list[str] | None = None) -> None:
        """Absolute progress, for work whose total grows while it runs (a replay of a live log);
        `details` are shown under the bar, redrawn in place on a terminal."""
        self.total = total
        if details is not None:
            self.details = details
        self.advance(done - self.done)

    def finish(self) -> None:
        self._show(final=True)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        share = self.done / self.total if self.total else 1.0
        bar = "#" * int(share * 30)
        if self.total <= self.done:
            left = "done"
        elif rate > 0:
            left = f"{_duration((self.total - self.done) / rate)} left"
        else:
            left = "time left not known yet"  # nothing done: no rate to go by
        return (
            f"{self.label} [{bar:<30}] {self.done}/{self.total} {share:6.1%} {rate:,.0f}/s, {left}"
        )

    def _show(self, final: bool) -> None:
        block = [self.line(), *(f"  {line}" for line in self.details)]
        if self.out.isatty():
            # Back to the start of the block last drawn, clear it, draw it again: the details
            # stay under the bar instead of scrolling past it.
            up = f"\x1b[{self._drawn - 1}A" if self._drawn > 1 else ""
            self.out.write(up + "\r\x1b[J" + "\n".join(block) + ("\n" if final else ""))
            self._drawn = len(block)
        else:
            self.out.write("\n".join(block) + "\n")
        self.out.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
