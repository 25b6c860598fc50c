"""System health: a worker's figures, each second, as a `system-health` event on the admin
channel (`admin:health`, which only admins' tokens may subscribe to).

The figures come from this process: its metrics (records folded, dead letters, publish retries,
the webhook-to-Ably histogram) and its loop (consumer lag per partition, the newest webhook
folded). Rates and latency quantiles are over the last `WINDOW` seconds; quantiles come from the
histogram's buckets as Prometheus' `histogram_quantile` computes them (interpolated within the
bucket). The event goes straight to Ably, not through the log: it is about this process now, and
the next second's supersedes it, so a failed publish is not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from streams import metrics
from streams.ably_sink import Sink
from streams.agents.publisher import batch_spec
from streams.derived import ADMIN_CHANNEL, message_id
from streams.events import utc_millis

__all__ = ["WINDOW", "HealthFigures", "health_publisher", "quantile"]

log = logging.getLogger(__name__)

WINDOW = 10.0  # seconds that rates and latency quantiles are taken over
LATENCY = "streams_webhook_to_ably_seconds"


def quantile(q: float, buckets: list[float]) -> float | None:
    """The q-quantile (seconds) of a histogram's observations per bucket (`SECONDS_BUCKETS`,
    then +Inf), interpolated within its bucket; None without observations."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank, seen, lower = q * total, 0.0, 0.0
    for bound, n in zip(metrics.SECONDS_BUCKETS, buckets, strict=False):
        if n and seen + n >= rank:
            return lower + (bound - lower) * (rank - seen) / n
        seen, lower = seen + n, bound
    return metrics.SECONDS_BUCKETS[-1]  # in the +Inf bucket: at least the largest bound


class HealthFigures:
    """Samples this process's figures; each sample's rates cover the last `WINDOW` seconds."""

    def __init__(
        self,
        worker: str,
        lag: Callable[[], dict[int, int]],
        last_received: Callable[[], int | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.worker, self.lag, self.last_received, self.clock = worker, lag, last_received, clock
        self.samples: deque[tuple[float, float, list[float]]] = deque()

    def sample(self) -> dict[str, Any]:
        now = self.clock()
        records = metrics.counted("streams_raw_records_total")
        latency = metrics.histogram(LATENCY)[:-1]  # per bucket, without the sum
        self.samples.append((now, records, latency))
        while len(self.samples) > 1 and now - self.samples[0][0] > WINDOW:
            self.samples.popleft()
        then, records_then, latency_then = self.samples[0]
        elapsed = now - then
        recent = [a - b for a, b in zip(latency, latency_then, strict=True)]
        p50, p99 = quantile(0.5, recent), quantile(0.99, recent)
        last = self.last_received()
        return {
            "worker": self.worker,
            "at": utc_millis(datetime.fromtimestamp(now, tz=UTC)),
            "records_per_second": round((records - records_then) / elapsed, 1) if elapsed else 0.0,
            "consumer_lag": {str(p): n for p, n in sorted(self.lag().items())},
            "dead_letters": int(metrics.counted("streams_dead_letters_total")),
            "latency_ms": {
                "p50": None if p50 is None else round(p50 * 1000),
                "p99": None if p99 is None else round(p99 * 1000),
            },
            "publish_errors": int(
                metrics.counted("streams_dead_letters_total", family="publisher")
            ),
            "publish_retries": int(metrics.counted("streams_publish_retries_total")),
            "last_webhook_at": None
            if last is None
            else utc_millis(datetime.fromtimestamp(last / 1000, tz=UTC)),
        }


def health_publisher(
    sink: Sink, figures: HealthFigures, every: float = 1.0
) -> Callable[[], Awaitable[None]]:
    """A worker service: a `system-health` event to the admin channel every `every` seconds."""

    async def run() -> None:
        while True:
            await asyncio.sleep(every)
            data = figures.sample()
            event = {
                "id": message_id(figures.worker, data["at"]),
                "name": "system-health",
                "channel": ADMIN_CHANNEL,
                "data": data,
            }
            try:
                (outcome,) = await sink.publish([batch_spec(event)])
            except Exception:  # a health report must never take the worker down
                log.exception("system-health publish failed")
                continue
            if not outcome.delivered:
                log.debug("system-health not published: %s", outcome.reason)

    return run
