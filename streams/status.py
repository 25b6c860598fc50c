"""`streams status`: the stack on one screen. The broker, the worker, how far the live worker is
behind the log, each projection's versions, and the dead letters waiting for an operator."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from collections.abc import Sequence

from streams import event_loop
from streams.broker import brokers_answering, kafka_bootstrap
from streams.dlq import read_ledger
from streams.replay.control import Position, read_versions
from streams.replay.versions import LIVE_GROUP, Versions
from streams.settings import Settings
from streams.tables.projection import Projection
from streams.topics import DLQ
from streams.worker_url import find_worker_url

__all__ = ["status"]


def status(catalog: Sequence[Projection], settings: Settings, args: argparse.Namespace) -> int:
    """Print the stack's state; exit 1 when the broker or the worker does not answer."""
    bootstrap = kafka_bootstrap(settings)
    brokers = event_loop.run(brokers_answering(bootstrap))
    print(f"broker    {bootstrap}: " + (f"{brokers} node(s) answer" if brokers else "no answer"))
    url = find_worker_url(settings, getattr(args, "url", None))
    health = _health(url)
    print(f"worker    {url}: {health}")
    if not brokers:
        return 1
    event_loop.run(_from_kafka(bootstrap, catalog))
    return 0 if health == "ready" else 1


def _health(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return "ready" if json.loads(response.read()).get("status") == "ok" else "not ready"
    except urllib.error.HTTPError as exc:
        return f"not ready ({exc.code}: still joining or restoring)"
    except (urllib.error.URLError, OSError) as exc:
        return f"no answer ({getattr(exc, 'reason', exc)})"


async def _from_kafka(bootstrap: str, catalog: Sequence[Projection]) -> None:
    async with Position(bootstrap) as position:
        head = await position.head()
        live = await position.lag(LIVE_GROUP, head)
        per_partition = ", ".join(
            f"p{p} {max(0, h - c):,}" for p, (c, h) in sorted(live.partitions.items())
        )
        print(
            f"lag       live worker {live.behind:,} records behind the log of {live.total:,} "
            f"({per_partition}); {live.members} member(s) in its group"
        )
    recorded = await read_versions(bootstrap)
    lines = []
    for projection in catalog:
        versions = recorded.get(projection.name, Versions.initial(projection))
        others = [v for v in versions.all(projection) if v != versions.serving]
        extra = f" (also {', '.join(map(str, others))})" if others else ""
        serving = "unserved" if versions.serving is None else f"v{versions.serving}"
        lines.append(f"{projection.name} {serving}{extra}")
    print("versions  " + ", ".join(lines))
    ledger = await read_ledger(bootstrap)
    pending = [letter for letter in ledger.letters if letter.coordinates not in ledger.redriven]
    print(
        f"dead      {len(pending)} dead letter(s) waiting on {DLQ.name} "
        f"({len(ledger.letters)} in all; `streams dlq list`)"
    )
