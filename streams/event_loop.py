"""The event loop of every `streams` process: uvloop's (libuv, in C), not asyncio's own.

Why: part of the ingress's CPU a webhook is the loop's own work (waking on a socket, scheduling
callbacks, writing the answer). Two alternated runs each on this machine (2026-12-07): `streams
ingress` took 1,760 and 2,032 signed webhooks/s on asyncio's loop, 1,980 and 2,219 on uvloop
(means 1,896 -> 2,100, +11%), and its CPU a webhook at 500/s went from 0.97-1.00 to 0.88 ms. The
worker, whose time goes to folding, did not move. The code stays plain asyncio: only the entry
points choose the loop. Unit tests run it on asyncio's loop (pytest-asyncio's), the integration
tests on uvloop (they start the `streams` command).
"""

from __future__ import annotations

import uvloop

__all__ = ["new_event_loop", "run"]

run = uvloop.run  # asyncio.run on uvloop's loop
new_event_loop = uvloop.new_event_loop
