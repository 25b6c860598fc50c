"""A guard around a race in faust-streaming 0.15's table recovery that loses records.

When a worker finishes recovering its tables after a rebalance or a restart,
`Recovery.on_recovery_completed` (faust/tables/recovery.py) resumes the source partitions, then
awaits `consumer.perform_seek()` (back to the committed offsets), then `flow_control.resume()`,
which empties every stream's queue. While the seek is awaited the fetcher keeps delivering
records from its old position; the ones still queued are emptied away, and the consumer records
the jump in offsets as a compaction gap it counts as acknowledged, so its commits pass records
no agent ever saw (faust#596). Seen here as a restarted worker skipping about 200 records of
every partition, and as derived events never published after a failover.

The guard changes the order, not Faust's code: while `on_recovery_completed` runs, resuming the
source partitions is deferred until it has returned, that is until after the seek and after the
queues were emptied, so nothing fetched from the old position can be delivered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any

from faust.tables.recovery import Recovery

__all__ = ["install"]

_GUARDED = "_streams_resume_after_recovery"


def install() -> None:
    """Guard `Recovery.on_recovery_completed` (once per process)."""
    if getattr(Recovery.on_recovery_completed, _GUARDED, False):
        return
    Recovery.on_recovery_completed = _resuming_after(Recovery.on_recovery_completed)  # type: ignore[method-assign]


def _resuming_after(
    completed: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., Coroutine[Any, Any, None]]:
    @functools.wraps(completed)
    async def on_recovery_completed(self: Any, *args: Any, **kwargs: Any) -> None:
        consumer = self.app.consumer
        deferred: list[Any] = []
        consumer.resume_partitions = deferred.append  # an instance attribute, removed below
        try:
            await completed(self, *args, **kwargs)
        finally:
            del consumer.resume_partitions
            for partitions in deferred:
                consumer.resume_partitions(partitions)

    setattr(on_recovery_completed, _GUARDED, True)
    return on_recovery_completed
