"""`make bench` (= `python -m bench`): every row in one run, then bench/results/.

    python -m bench [--records 100000] [--trials 3] [--quick]

Rows 1, 2, 2b, 3, 3b and 6b share a fresh broker and the same pre-filled topic per trial
(bench.throughput); rows 4, 5, 6, 7 and 8 (bench.mongo_sink, with a FerretDB container) each
get fresh brokers of their own. Figures are medians
of the trials with min and max; on a shared machine they are noisy, which is why each is set
beside a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench import latency, memory, mongo_sink, replay, throughput
from bench.common import Spread, bodies, broker, fill
from bench.ingress import bare_rate, ingress_rate
from bench.report import Results, write


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=100_000, help="rows 1-3 and 6b: records in the log"
    )
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--keys", type=int, default=1_000_000, help="row 7: table keys restored and held"
    )
    parser.add_argument("--hold", type=float, default=20, help="row 4: seconds per fixed rate")
    parser.add_argument(
        "--search-hold", type=float, default=60, help="row 4: seconds per search step"
    )
    parser.add_argument("--ingress-seconds", type=float, default=10)
    parser.add_argument(
        "--replay-records", type=int, default=100_000, help="row 6: records in the log replayed"
    )
    parser.add_argument("--quick", action="store_true", help="small and short: checks the harness")
    args = parser.parse_args()
    if args.quick:
        args.records, args.trials, args.keys = 3000, 1, 50_000
        args.hold, args.search_hold, args.ingress_seconds = 3, 3, 3
        args.replay_records = 20_000

    started = time.monotonic()
    command = "make bench" if not args.quick else "python -m bench --quick"
    results = Results(command=command, records=args.records, trials=args.trials, keys=args.keys)
    results.throughput = throughput.measure(args.records, args.trials)

    results.replay_records = args.replay_records
    log = bodies(args.replay_records)
    for _ in range(args.trials):
        with broker() as kafka, tempfile.TemporaryDirectory(prefix="streams-bench-re-") as tmp:
            asyncio.run(fill(kafka.bootstrap, log))
            rate = replay.all_at_once(kafka.bootstrap, args.replay_records, 2, Path(tmp))
        results.replay.values.append(rate)
        print(f"replay of every projection: {rate:,.0f} records/s", flush=True)

    ours, in_worker, bare = Spread([]), Spread([]), Spread([])
    for _ in range(args.trials):
        for command, spread in (("ingress", ours), ("worker", in_worker)):
            with broker() as kafka, tempfile.TemporaryDirectory(prefix="streams-bench-in-") as tmp:
                spread.values.append(
                    ingress_rate(kafka.bootstrap, Path(tmp), args.ingress_seconds, command)
                )
        bare.values.append(bare_rate(args.ingress_seconds))
        print(
            f"ingress {ours.values[-1]:,.0f}/s, in the worker {in_worker.values[-1]:,.0f}/s, "
            f"bare handler {bare.values[-1]:,.0f}/s",
            flush=True,
        )
    results.ingress, results.ingress_in_worker, results.bare = ours, in_worker, bare

    results.warm_up = 3 if args.quick else latency.WARM_UP_SECONDS
    with broker() as kafka:
        results.latency, results.held = latency.measure(
            kafka.bootstrap,
            [100, 1000],
            args.hold,
            args.search_hold,
            drain=60,
            warm_up=results.warm_up,
        )
    results.latency_hold, results.search_hold = args.hold, args.search_hold

    with tempfile.TemporaryDirectory(prefix="streams-bench-mem-") as tmp:
        results.memory = memory.measure(Path(tmp), args.keys)
    print(f"memory: {results.memory}", flush=True)

    results.sink = mongo_sink.measure(args.records, args.trials, hold=args.hold)

    results.minutes = (time.monotonic() - started) / 60
    print(write(results))


if __name__ == "__main__":
    main()
