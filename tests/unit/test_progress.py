from __future__ import annotations

import io
import re

from streams.progress import Progress


def test_progress_reports_done_total_rate_and_time_left() -> None:
    out = io.StringIO()
    progress = Progress("replay", 200, out=out, every=0)
    progress.advance(50)
    progress.finish()
    first, last = out.getvalue().splitlines()[0], out.getvalue().splitlines()[-1]
    assert "replay" in first and "50/200" in first and "25.0%" in first and "/s" in first
    assert "left" in first and "50/200" in last


def test_progress_follows_a_total_that_grows_while_the_work_runs() -> None:
    out = io.StringIO()
    progress = Progress("replay", 0, out=out, every=0)
    progress.update(40, 100)
    progress.update(90, 120)  # live traffic moved the head of the log
    progress.finish()
    lines = out.getvalue().splitlines()
    assert "40/100" in lines[0] and "90/120" in lines[-1] and "75.0%" in lines[-1]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_done_yet_claims_no_time_left() -> None:
    out = io.StringIO()
    progress = Progress("replay", 100, out=out, every=0)
    progress.update(0, 100)
    progress.finish()
    assert "time left not known yet" in out.getvalue() and "0m00s" not in out.getvalue()


def test_details_are_redrawn_under_the_bar_on_a_terminal() -> None:
    out = Terminal()
    progress = Progress("replay", 100, out=out)
    progress.every = 0
    progress.update(10, 100, ["p0: 10/50", "p1: 0/50"])
    progress.update(60, 100, ["p0: 50/50", "p1: 10/50"])
    progress.finish()
    draws = re.split(r"(?:\x1b\[\d+A)?\r\x1b\[J", out.getvalue())[1:]
    assert len(draws) == 3
    assert draws[0].splitlines()[1:] == ["  p0: 10/50", "  p1: 0/50"]
    # Each later draw first goes back up over the two detail lines it replaces.
    assert out.getvalue().count("\x1b[2A") == 2
    assert draws[-1].splitlines()[1:] == ["  p0: 50/50", "  p1: 10/50"]
