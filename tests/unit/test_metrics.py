"""Counters, gauges and histograms in Prometheus' text format."""

from __future__ import annotations

from streams import metrics


def test_a_gauge_shows_its_last_value() -> None:
    metrics.gauge("streams_test_gauge", 5, projection="revenue")
    metrics.gauge("streams_test_gauge", 2, projection="revenue")
    text = metrics.render()
    assert "# TYPE streams_test_gauge gauge" in text
    assert 'streams_test_gauge{projection="revenue"} 2' in text


def test_a_histogram_counts_each_observation_in_its_bucket_and_above() -> None:
    for seconds in (0.003, 0.2, 0.2, 99.0):
        metrics.observe("streams_test_seconds", seconds)
    lines = metrics.render().splitlines()
    assert "# TYPE streams_test_seconds histogram" in lines
    assert 'streams_test_seconds_bucket{le="0.005"} 1' in lines
    assert 'streams_test_seconds_bucket{le="0.1"} 1' in lines
    assert 'streams_test_seconds_bucket{le="0.25"} 3' in lines
    assert 'streams_test_seconds_bucket{le="60.0"} 3' in lines
    assert 'streams_test_seconds_bucket{le="+Inf"} 4' in lines
    assert "streams_test_seconds_count 4" in lines
    assert "streams_test_seconds_sum 99.403" in lines
