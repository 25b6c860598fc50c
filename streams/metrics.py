"""Process-wide counters, exposed in Prometheus' text format at `GET /metrics`."""

from __future__ import annotations

from collections import Counter

__all__ = ["SECONDS_BUCKETS", "count", "counted", "gauge", "histogram", "observe", "render"]

# Upper bounds (s) of a latency histogram's buckets: from a few milliseconds to a minute.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]
_counters: Counter[tuple[str, Labels]] = Counter()
_gauges: dict[tuple[str, Labels], float] = {}
_histograms: dict[str, list[float]] = {}  # name -> observations per bucket, +Inf last, then sum
_HELP = {
    "streams_records_total": "raw records a family agent processed",
    "streams_raw_records_total": "raw records the live worker folded (each once, whatever reads it)",
    "streams_records_already_folded_total": (
        "raw records skipped because the tables already held them (after a kill), by family"
    ),
    "streams_dead_letters_total": "records sent to the dead-letter topic, by family",
    "streams_derived_events_total": "derived events emitted, by name",
    "streams_unknown_types_total": "raw records of a type no family handles (kept, not processed)",
    "streams_published_total": "derived events the publisher delivered to Ably",
    "streams_logged_not_published_total": "derived events only logged: ABLY_API_KEY is not set",
    "streams_ingress_refused_total": (
        "requests the ingress answered other than 200 (400, 401, 413; 503 when Kafka could not "
        "take them), by endpoint and status"
    ),
    "streams_publish_retries_total": "publish attempts retried after a transient failure",
    "streams_replay_records_total": "raw records a replay worker folded, by projection and version",
    "streams_replay_bad_records_total": "raw records a replay worker could not fold (skipped)",
    "streams_mongo_sink_writes_total": "documents the MongoDB sink wrote or deleted",
    "streams_mongo_sink_errors_total": "MongoDB sink attempts that failed (each is retried)",
    "streams_mongo_sink_lag_records": (
        "changelog records the MongoDB read models do not reflect yet, by projection and version"
    ),
    "streams_mongo_sink_write_lag_seconds": (
        "per MongoDB sink write: from its oldest change's commit in Kafka to MongoDB's answer"
    ),
    "streams_webhook_to_ably_seconds": (
        "per derived event delivered: from its webhook's arrival at the ingress to Ably's answer"
    ),
    "streams_commit_seconds": (
        "per batch of an input partition: its Kafka transaction, from begin to the commit's answer"
    ),
    "streams_publish_waiting": "derived events in the publisher's outbox, not yet sent",
    "streams_publish_superseded_total": (
        "state events dropped unsent because a newer one of the same subject followed them on "
        "their channel (Ably's per-channel rate)"
    ),
    "streams_mongo_sink_lag_seconds": (
        "age of the oldest change the MongoDB sink read and has not written (growing while "
        "MongoDB is down), else of its last write's oldest; 0 when caught up"
    ),
}


def count(metric: str, amount: int = 1, **labels: str) -> None:
    _counters[(metric, tuple(sorted(labels.items())))] += amount


def gauge(metric: str, value: float, **labels: str) -> None:
    _gauges[(metric, tuple(sorted(labels.items())))] = value


def observe(metric: str, seconds: float) -> None:
    """One observation of a latency histogram (`SECONDS_BUCKETS`)."""
    counts = _histograms.setdefault(metric, [0.0] * (len(SECONDS_BUCKETS) + 2))
    for i, bound in enumerate(SECONDS_BUCKETS):
        if seconds <= bound:
            counts[i] += 1
            break
    else:
        counts[len(SECONDS_BUCKETS)] += 1
    counts[-1] += seconds


def counted(metric: str, **labels: str) -> float:
    """A counter's total over the label sets that include `labels`."""
    wanted = set(labels.items())
    return sum(v for (name, ls), v in _counters.items() if name == metric and wanted <= set(ls))


def histogram(metric: str) -> list[float]:
    """A copy of a histogram's observations per bucket (`SECONDS_BUCKETS`, +Inf), then sum."""
    return list(_histograms.get(metric, [0.0] * (len(SECONDS_BUCKETS) + 2)))


def render() -> str:
    lines = []
    for kind, values in (("counter", _counters), ("gauge", _gauges)):
        for name in sorted({n for n, _ in values}):
            lines.append(f"# HELP {name} {_HELP.get(name, name)}")
            lines.append(f"# TYPE {name} {kind}")
            for (metric, labels), value in sorted(values.items()):
                if metric == name:
                    rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                    lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
    for name, counts in sorted(_histograms.items()):
        lines.append(f"# HELP {name} {_HELP.get(name, name)}")
        lines.append(f"# TYPE {name} histogram")
        total = 0.0
        for bound, n in zip((*SECONDS_BUCKETS, "+Inf"), counts, strict=False):
            total += n
            lines.append(f'{name}_bucket{{le="{bound}"}} {total:.0f}')
        lines.append(f"{name}_sum {counts[-1]:.3f}")
        lines.append(f"{name}_count {total:.0f}")
    return "\n".join(lines) + "\n"
