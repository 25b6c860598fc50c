"""Rows 8 to 8c, the MongoDB sink (`STREAMS_MONGO_SINK_URI`), against FerretDB (the
MongoDB-compatible server of the integration tests, in its container).

Row 8: one worker consuming the pre-filled raw topic with the sink on (every read model), beside
the same worker without it, each on a fresh broker, timed as row 2. Row 8b: the same run, from
the worker's start until MongoDB reflects the whole log (`streams sink status` says no lag).
Row 8c: webhooks at 1,000/s through `streams ingress` into a worker with the sink on: each of the
sink's writes observes the time from its oldest change's commit in Kafka to MongoDB's answer
(`streams_mongo_sink_write_lag_seconds`); p50 and p99 are the histogram's bucket bounds.

    python -m bench.mongo_sink [--records 100000] [--trials 3]   # these rows alone
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pymongo.errors import PyMongoError

from bench import latency, ours
from bench.common import Spread, bodies, broker, fill, worker_env
from bench.ingress import SigningKey
from streams import metrics
from streams.mongo_sink.cli import sink_lag
from streams.settings import Secret
from streams.tables.registry import PROJECTIONS
from tests.integration.processes import http, start_worker
from tests.integration.services import start_ferretdb

__all__ = ["SinkFigures", "measure"]

WRITE_LAG = "streams_mongo_sink_write_lag_seconds"


@dataclass
class SinkFigures:
    without: Spread = field(default_factory=lambda: Spread([]))  # worker records/s, no sink
    with_sink: Spread = field(default_factory=lambda: Spread([]))  # the same, sink on
    sunk: Spread = field(default_factory=lambda: Spread([]))  # log records/s into MongoDB
    rate: int = 1000
    hold: float = 20
    lag_p50: float = 0.0  # s, bucket bound
    lag_p99: float = 0.0
    writes: int = 0


def measure(records: int, trials: int, rate: int = 1000, hold: float = 20) -> SinkFigures:
    figures = SinkFigures(rate=rate, hold=hold)
    log = bodies(records)
    # Ryuk (testcontainers' reaper) is an image that cannot be pulled here, as in the tests.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    mongo = asyncio.run(start_ferretdb())
    try:
        for _ in range(trials):
            for sink in (False, True):
                with (
                    broker() as kafka,
                    tempfile.TemporaryDirectory(prefix="streams-bench-ms-") as tmp,
                ):
                    asyncio.run(fill(kafka.bootstrap, log))
                    worker_rate, sunk = _consume(
                        kafka.bootstrap, records, Path(tmp), mongo.address if sink else None
                    )
                (figures.with_sink if sink else figures.without).values.append(worker_rate)
                if sunk is not None:
                    figures.sunk.values.append(sunk)
            print(
                f"worker {figures.without.values[-1]:,.0f}/s, with the MongoDB sink "
                f"{figures.with_sink.values[-1]:,.0f}/s, in MongoDB {figures.sunk.values[-1]:,.0f}/s",
                flush=True,
            )
        with broker() as kafka:
            _lag(kafka.bootstrap, mongo.address, figures)
    finally:
        mongo.stop()
    return figures


def _consume(
    bootstrap: str, records: int, workdir: Path, uri: str | None
) -> tuple[float, float | None]:
    """(the worker's records/s with every partition open, the log's records/s into MongoDB
    from the worker's start; None without the sink)."""
    database = f"bench{uuid.uuid4().hex[:8]}"
    extra = {"STREAMS_MONGO_SINK_URI": uri, "STREAMS_MONGO_SINK_DB": database} if uri else {}
    started = time.perf_counter()
    worker = start_worker(worker_env(bootstrap, **extra), workdir)
    try:
        ready, before, done = asyncio.run(ours.consumed(worker, bootstrap, records))
        rate = (
            (records - before) / (done - ready) if before < records else records / (done - started)
        )
        if uri is None:
            return rate, None
        asyncio.run(_caught_up(bootstrap, uri, database, lambda: worker.process.poll() is None))
        return rate, records / (time.perf_counter() - started)
    finally:
        worker.stop()


async def _caught_up(bootstrap: str, uri: str, database: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 900
    while True:
        try:
            rows = await sink_lag(bootstrap, Secret(uri), database, (), PROJECTIONS)
        except PyMongoError:  # FerretDB busy with the sink's writes beyond the read's timeout
            rows = []
        if rows and all(r["lag_records"] == 0 for r in rows):
            return
        assert alive(), "the worker stopped"
        assert time.monotonic() < deadline, f"the sink did not catch up: {rows}"
        await asyncio.sleep(0.2)


def _lag(bootstrap: str, uri: str, figures: SinkFigures) -> None:
    database = f"bench{uuid.uuid4().hex[:8]}"
    key = SigningKey()
    with tempfile.TemporaryDirectory(prefix="streams-bench-mslag-") as tmp:
        env = worker_env(
            bootstrap,
            GHL_WEBHOOK_ED25519_PUBLIC_KEY=key.public_pem,
            STREAMS_MONGO_SINK_URI=uri,
            STREAMS_MONGO_SINK_DB=database,
        )
        worker = start_worker(env, Path(tmp) / "worker")
        ingress = start_worker(env, Path(tmp) / "ingress", "ingress")
        try:
            worker.wait_healthy()
            ingress.wait_healthy()
            url = f"{ingress.url}/webhooks/ghl"
            alive = lambda: worker.process.poll() is None  # noqa: E731
            latency.send_messages(url, key, 500, 10, "warm")  # warm, as row 4
            asyncio.run(_caught_up(bootstrap, uri, database, alive))
            before = _buckets(http("GET", f"{worker.url}/metrics")[1])
            latency.send_messages(url, key, figures.rate, figures.hold, "lag")
            asyncio.run(_caught_up(bootstrap, uri, database, alive))
            after = _buckets(http("GET", f"{worker.url}/metrics")[1])
        finally:
            ingress.stop()
            worker.stop()
    counts = [a - b for a, b in zip(after, before, strict=True)]
    figures.writes = int(counts[-1])
    figures.lag_p50, figures.lag_p99 = _quantile(counts, 0.5), _quantile(counts, 0.99)
    print(
        f"MongoDB sink at {figures.rate}/s: {figures.writes} writes, p50 <= {figures.lag_p50} s, "
        f"p99 <= {figures.lag_p99} s",
        flush=True,
    )


def _buckets(text: str) -> list[float]:
    """The cumulative counts of the write-lag histogram, +Inf last."""
    return [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{WRITE_LAG}_bucket")
    ] or [0.0] * (len(metrics.SECONDS_BUCKETS) + 1)


def _quantile(cumulative: list[float], q: float) -> float:
    """The bound of the first bucket holding the q-quantile (inf past the last bound)."""
    total = cumulative[-1]
    for bound, count in zip(metrics.SECONDS_BUCKETS, cumulative, strict=False):
        if total and count >= q * total:
            return bound
    return float("inf")


def table(f: SinkFigures) -> list[str]:
    """Rows 8 to 8c of the results table."""
    return [
        f"| 8 | one `streams worker` with the MongoDB sink on (every read model, FerretDB), as "
        f"row 2 (records/s) | {f.with_sink.cell()} | without the sink {f.without.cell()} | "
        f"{f.with_sink.median / f.without.median:.3f} | >= 0.7 |",
        f"| 8b | the same run: the log into MongoDB, worker start to no sink lag (records/s) | "
        f"{f.sunk.cell()} | worker without the sink {f.without.cell()} | "
        f"{f.sunk.median / f.without.median:.3f} | |",
        f"| 8c | MongoDB sink lag at {f.rate:,} webhooks/s for {f.hold:.0f} s: commit in Kafka "
        f"to MongoDB's answer, per write ({f.writes:,} writes), p50 / p99 (s, bucket bound) | "
        f"<= {f.lag_p50} / <= {f.lag_p99} | | | p99 < 1 s |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--hold", type=float, default=20)
    args = parser.parse_args()
    figures = measure(args.records, args.trials, hold=args.hold)
    print("\n".join(table(figures)))


if __name__ == "__main__":
    main()
