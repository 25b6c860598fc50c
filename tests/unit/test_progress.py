from __future__ import annotations

import io

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
