"""The event loop of every `streams` process: uvloop's (libuv, in C), not asyncio's own.

Why: the ingress spends most of its time in the loop's own work (waking on a socket, scheduling
callbacks, writing a response), not in ours. On this machine (2026-12-07) uvloop took `streams
ingress` from 1,760 and 2,032 to 1,980 and 2,219 signed webhooks/s (row 5's client, alternated),
and its CPU a webhook at 500/s from 0.97-1.00 to 0.88 ms; the worker, which spends its time folding,
did not change (row 2: 8,105 and 9,130 against 8,326 and 8,668 records/s). The code stays plain
asyncio: only the entry points choose the loop, and the tests run the same code on asyncio's.
"""

from __future__ import annotations

import uvloop

__all__ = ["new_event_loop", "run"]

run = uvloop.run  # asyncio.run on uvloop's loop
new_event_loop = uvloop.new_event_loop
