"""Instructions per record of the worker's folding, counted by valgrind: a measure that does not
move with the machine's load (wall-clock rates on a shared machine move 2-3x from hour to hour;
these repeat within about 1%), for comparing two versions of the code on the same records.

    python -m bench.instructions [--records 3000] [--path worker|dicts] [--source import|live]
                                 [--without activity,...]

`dicts`: the live worker's families over plain dicts (what row 2b times). `worker`: the same
through the worker's `Processor` and a `PartitionState` on RocksDB, each batch of 500 records a
partition sealed and written to its store, as a task does (no Kafka). `live` records build their
derived events; `import` records (what the bench's log holds) build none. `--without` leaves
families out, to see what one costs. Not part of `make bench`; needs valgrind
(`apt-get install valgrind`). Each figure is (a run folding the records twice) minus (a run
folding them once), over the records: start-up and the records' making cancel out.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from bench.common import PARTITIONS, bodies
from bench.families import fold_record, owners
from streams.agents.family import Family, Processor
from streams.app import live_families
from streams.codec import dumps
from streams.events import SOURCES, record_headers
from streams.runtime.state import PartitionState
from streams.runtime.store import POSITION, Store
from streams.runtime.transaction import Effects
from streams.tables.registry import LIVE_TABLES
from streams.topics import raw_key

__all__ = ["count", "main"]

BATCH = 500  # records of one partition per batch (the worker's grow with the backlog)
RECEIVED_AT = 1_772_323_200_000  # 2026-03-01, ms


def records(count: int, source: str) -> dict[int, list[Any]]:
    """The bench mix as raw records, per partition (Kafka's default partitioner of the key)."""
    partitioner, partitions = DefaultPartitioner(), list(range(PARTITIONS))
    out: dict[int, list[Any]] = {p: [] for p in partitions}
    for n, body in enumerate(bodies(count)):
        value, key = dumps(body), raw_key(body)
        p = partitioner(key, partitions, partitions)
        headers = record_headers(
            body, value, source=source, signature="trusted", received_at=RECEIVED_AT + n
        )
        out[p].append(
            SimpleNamespace(value=value, key=key, partition=p, offset=len(out[p]), headers=headers)
        )
    return out


def fold_dicts(by_partition: dict[int, list[Any]], families: list[Family]) -> None:
    for partition_records in by_partition.values():
        by_type = owners({name: {} for name in LIVE_TABLES}, families)
        for record in partition_records:
            fold_record(by_type, record)  # what row 2b times, record for record


def fold_worker(by_partition: dict[int, list[Any]], families: list[Family], tmp: Path) -> None:
    for partition, partition_records in by_partition.items():
        store = Store(tmp / f"partition-{partition}")
        state = PartitionState(store, LIVE_TABLES)
        processor = Processor(families, state, live=True, label="live")
        for start in range(0, len(partition_records), BATCH):
            batch = partition_records[start : start + BATCH]
            processor.process(batch, Effects())
            state.put(POSITION, batch[-1].offset + 1)
            changes = state.seal()
            store.write(changes, start)
            state.sealed_stored()
        store.close()


def _inner(args: argparse.Namespace) -> None:
    families = [f for f in live_families() if f[0] not in args.without]
    by_partition = records(args.records, args.source)
    for _ in range(args.passes):
        if args.path == "dicts":
            fold_dicts(by_partition, families)
        else:
            with tempfile.TemporaryDirectory(prefix="streams-instructions-") as tmp:
                fold_worker(by_partition, families, Path(tmp))


def count(argv: list[str], records: int) -> float:
    """Instructions per record for these options (`records` of them; two passes minus one)."""
    refs = []
    for passes in (1, 2):
        command = [
            *("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"),
            *(sys.executable, "-m", "bench.instructions", "--inner", "--passes", str(passes)),
            *argv,
        ]
        # A fixed hash seed: dict and set layouts, and so the count, repeat from run to run.
        env = os.environ | {"PYTHONHASHSEED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        lines = [line for line in done.stderr.splitlines() if "I   refs:" in line]
        assert lines, done.stderr[-2000:]
        refs.append(int(lines[-1].split()[-1].replace(",", "")))
    return (refs[1] - refs[0]) / records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--path", choices=("worker", "dicts"), default="worker")
    parser.add_argument("--source", choices=SOURCES, default="import")
    parser.add_argument(
        "--without", type=lambda s: [f for f in s.split(",") if f], default=[], metavar="FAMILIES"
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        _inner(args)
        return
    own = sys.argv[1:] if argv is None else argv
    print(f"{count(own, args.records):,.0f} instructions/record ({' '.join(own) or 'defaults'})")


if __name__ == "__main__":
    main()
