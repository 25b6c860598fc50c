"""The results: bench/results/results.md (the table), bench/results/throughput.png (the chart),
and the same table between the bench markers in README.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.common import PARTITIONS, Spread, machine
from bench.latency import Step, polling_reference
from bench.memory import Memory
from bench.mongo_sink import SinkFigures
from bench.mongo_sink import table as sink_rows
from bench.throughput import Throughput
from streams.settings import REPO_ROOT

__all__ = ["Results", "write"]

RESULTS = REPO_ROOT / "bench" / "results"
README = REPO_ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass
class Results:
    command: str
    records: int
    trials: int
    keys: int
    throughput: Throughput | None = None
    ingress: Spread = field(default_factory=lambda: Spread([]))  # `streams ingress`
    ingress_in_worker: Spread = field(default_factory=lambda: Spread([]))
    bare: Spread = field(default_factory=lambda: Spread([]))
    replay: Spread = field(default_factory=lambda: Spread([]))  # row 6, every projection
    replay_records: int = 0
    latency: list[Step] = field(default_factory=list)
    held: Step | None = None
    latency_hold: float = 0
    search_hold: float = 0
    warm_up: float = 0  # s at 500/s before row 4's steps
    memory: Memory | None = None
    sink: SinkFigures | None = None
    minutes: float = 0


def _ms(value: float) -> str:
    return "lost" if math.isinf(value) else f"{value:,.0f}"


def table(r: Results) -> str:
    t, m = r.throughput, r.memory
    assert t is not None and m is not None
    ceiling = t.ceiling.median
    p50, p95, p99 = polling_reference()
    rows = [
        "| # | row | this project | baseline, same run | ratio | target |",
        "|---|---|---|---|---|---|",
        f"| 1 | ceiling: bare aiokafka consumer + orjson decode (records/s) | | "
        f"{t.ceiling.cell()} | 1.00 | |",
        f"| 2 | one `streams worker`: every projection, RocksDB stores, a transaction per "
        f"round (every partition); every partition open (records/s) | {t.ours.cell()} | ceiling "
        f"{t.ceiling.cell()} | {t.ours.median / ceiling:.3f} | >= 30,000/s and >= 0.4 of "
        f"ceiling |",
        f"| 2b | upper bound of row 2: the worker's families over plain dicts, decode included, "
        f"in-process, no Kafka (records/s) | {t.families.cell()} | row 2 {t.ours.cell()} | "
        f"{t.ours.median / t.families.median:.3f} (row 2 / 2b) | |",
        f"| 3 | peer: Quix Streams running the worker's families (every projection) on its "
        f"per-key RocksDB state (records/s) | {t.ours.cell()} | Quix {t.peer_all.cell()} | "
        f"{t.ours.median / t.peer_all.median:.3f} | >= 2.0 |",
        f"| 3b | peer: Quix Streams folding revenue + unread only; this project folds every "
        f"projection (records/s) | {t.ours.cell()} | Quix {t.peer.cell()} | "
        f"{t.ours.median / t.peer.median:.3f} | |",
    ]
    for step in r.latency:
        rows.append(
            f"| 4 | latency at {step.rate:,}/s for {step.hold:.0f} s (`streams ingress` + one worker; "
            f"after {r.warm_up:.0f} s at 500/s), p50 / p95 / p99 (ms) | "
            f"{_ms(step.percentile(50))} / {_ms(step.percentile(95))} / "
            f"{_ms(step.percentile(99))} | polling every 2 s (modelled): {p50:,.0f} / "
            f"{p95:,.0f} / {p99:,.0f} | {step.percentile(99) / p99:.3f} (p99) | "
            + ("p99 <= 50 ms |" if step.rate == 1000 else "|")
        )
    held = (
        f"{r.held.rate:,}/s (p99 {_ms(r.held.percentile(99))} ms)"
        if r.held
        else "none (100/s already missed it)"
    )
    rows.append(
        f"| 4 | highest rate held {r.search_hold:.0f} s with p99 < 100 ms (100/s doubling) | "
        f"{held} | | | >= 5,000/s |"
    )
    rows += [
        f"| 5 | ingress (`streams ingress`): signed webhooks, Kafka-acknowledged (requests/s) | "
        f"{r.ingress.cell()} | bare aiohttp 200 {r.bare.cell()} | "
        f"{r.ingress.median / r.bare.median:.3f} | >= 0.7 |",
        f"| 5b | the same through a worker's own ingress, which also folds what it takes "
        f"(requests/s) | {r.ingress_in_worker.cell()} | bare aiohttp 200 {r.bare.cell()} | "
        f"{r.ingress_in_worker.median / r.bare.median:.3f} | |",
        f"| 6 | replay of every projection: `streams replay start --projection all --version 2 "
        f"--wait` beside a caught-up live worker, {r.replay_records:,} records from offset 0, "
        f"start-up included (records/s) | {r.replay.cell()} | ceiling {t.ceiling.cell()} | "
        f"{r.replay.median / ceiling:.3f} | >= 50,000/s |",
        f"| 6b | the live worker rebuilding from offset 0: empty data dir, new group, start-up "
        f"included (records/s) | {t.rebuild.cell()} | ceiling {t.ceiling.cell()} | "
        f"{t.rebuild.median / ceiling:.3f} | >= 30,000/s |",
        f"| 7 | peak RSS of a worker holding {m.keys:,} keys restored from its changelog "
        f"(MiB) | {m.peak:,.0f} | idle worker {m.idle:,.0f} | {m.peak / m.idle:.2f} | "
        f"<= 233 MiB (1,000,000 keys) |",
        f"| 7b | restoring those {m.keys:,} keys: worker start to /healthz 200 (s) | "
        f"{m.healthy:,.1f} | | | < 30 s (1,000,000 keys) |",
    ]
    if r.sink is not None:
        rows += sink_rows(r.sink)
    return "\n".join(
        [
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{r.command}` in "
            f"{r.minutes:.1f} min: {r.records:,} records of the production-like mix "
            f"(tests/traffic.py, 200 locations, 5% redeliveries) on {PARTITIONS} partitions; "
            f"rows 1 to 3b, 5, 6, 6b, 8 and 8b: median of {r.trials} trials (min to max). "
            f"Machine: {machine()}.",
            "",
            "The machine is shared with other engineers' test runs, so absolute figures move "
            "from run to run (the ceiling by 2-3x); compare each row with its baseline from the "
            "same run.",
            "",
            *rows,
            "",
            f"Checked: {t.checked}. Row 6: every replayed version equal to the live one, key "
            f"for key (`streams replay compare`). Row 7: {m.checked}; the restore itself took "
            f"{m.restoring:.1f} s as the worker logged it (see bench/memory.py).",
        ]
    )


def chart(r: Results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = r.throughput
    assert t is not None
    labels = [
        "ceiling\n(aiokafka)",
        "families\nover dicts",
        "streams\nworker",
        "Quix\n(every\nprojection)",
        "Quix\n(revenue\n+ unread)",
        "replay\n(all)",
        "bare\nhandler",
        "ingress",
    ]
    values = [
        t.ceiling.median,
        t.families.median,
        t.ours.median,
        t.peer_all.median,
        t.peer.median,
        r.replay.median,
        r.bare.median,
        r.ingress.median,
    ]
    colours = [
        "#999999",
        "#999999",
        "#d9822b",
        "#6a8caf",
        "#6a8caf",
        "#d9822b",
        "#999999",
        "#d9822b",
    ]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bars = ax.bar(labels, values, color=colours)
    ax.set_yscale("log")
    ax.set_ylabel("records or requests per second (log)")
    ax.set_title("streams against its ceilings and Quix Streams, one run (median)")
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"{value:,.0f}",
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput.png", dpi=110)
    plt.close(fig)


def write(r: Results) -> str:
    text = table(r)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "results.md").write_text(
        "# Benchmark results\n\n" + text + "\n\n![chart](throughput.png)\n"
    )
    chart(r)
    readme = README.read_text()
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        readme = head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1]
        README.write_text(readme)
    return text
