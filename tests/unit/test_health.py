from __future__ import annotations

import pytest

from schemas.validate import ably_message_problems, problems
from streams import metrics
from streams.health import LATENCY, WINDOW, HealthFigures, quantile


def buckets(**by_bound: int) -> list[float]:
    """Observations per bucket of metrics.SECONDS_BUCKETS (+Inf last), by bound name."""
    counts = [0.0] * (len(metrics.SECONDS_BUCKETS) + 1)
    for name, n in by_bound.items():
        bound = float(name.removeprefix("le_").replace("_", "."))
        counts[metrics.SECONDS_BUCKETS.index(bound)] = n
    return counts


def test_quantiles_interpolate_within_the_bucket_they_fall_in() -> None:
    # 100 observations: 50 up to 10 ms, 40 up to 25 ms, 10 up to 100 ms.
    counts = buckets(le_0_01=50, le_0_025=40, le_0_1=10)
    assert quantile(0.5, counts) == pytest.approx(0.01)
    assert quantile(0.6, counts) == pytest.approx(0.01 + 0.015 * 10 / 40)
    assert quantile(0.99, counts) == pytest.approx(0.05 + 0.05 * 9 / 10)
    assert quantile(0.5, buckets()) is None
    beyond = [0.0] * len(metrics.SECONDS_BUCKETS) + [3.0]
    assert quantile(0.5, beyond) == metrics.SECONDS_BUCKETS[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_figures_are_rates_and_quantiles_over_the_last_window() -> None:
    clock = Clock()
    figures = HealthFigures(
        "http://w1:6066", lambda: {1: 4, 0: 0}, lambda: 1_799_999_999_500, clock
    )
    figures.sample()
    metrics.count("streams_raw_records_total", 500)
    metrics.count("streams_records_total", 900, family="activity")  # not records: folds
    for _ in range(90):
        metrics.observe(LATENCY, 0.02)
    for _ in range(10):
        metrics.observe(LATENCY, 0.4)
    clock.now += 5
    sample = figures.sample()
    assert sample["records_per_second"] == 100.0
    assert sample["consumer_lag"] == {"0": 0, "1": 4}
    assert sample["latency_ms"] == {"p50": 18, "p99": 475}
    assert sample["last_webhook_at"] == "2027-01-15T07:59:59.500Z"
    assert sample["at"] == "2027-01-15T08:00:05.000Z"
    # A window later, nothing new: no rate, no latency to speak of.
    clock.now += WINDOW + 1
    figures.sample()
    clock.now += 1
    quiet = figures.sample()
    assert quiet["records_per_second"] == 0.0 and quiet["latency_ms"] == {"p50": None, "p99": None}


def test_the_event_matches_its_schema() -> None:
    figures = HealthFigures("http://w1:6066", dict, lambda: None, Clock())
    message = {
        "id": "abc:0",
        "name": "system-health",
        "channel": "admin:health",
        "data": figures.sample(),
    }
    assert ably_message_problems(message) == []
    assert problems("derived/system-health.json", message["data"]) == []
