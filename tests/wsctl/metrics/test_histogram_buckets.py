"""Histogram.buckets(): the non-empty buckets of a distribution, in the unit, for charts."""

import pytest

from wsctl.metrics import Histogram


def test_buckets_are_ordered_cover_every_value_and_are_in_seconds():
    """Each recorded value falls in one bucket (low <= v <= high, in seconds); counts add up."""
    hist = Histogram("reconnect_time")
    values = [0.0012, 0.0012, 0.25, 0.2501, 1.5, 4.0]
    for v in values:
        hist.record(v)
    buckets = hist.buckets()
    assert sum(n for _, _, n in buckets) == len(values)
    assert [b[0] for b in buckets] == sorted(b[0] for b in buckets)
    assert all(low <= high for low, high, _ in buckets)
    for v in values:
        holding = [b for b in buckets if b[0] <= v <= b[1]]
        assert len(holding) == 1, v
    assert buckets[0][2] == 2  # the two 1.2 ms values share one bucket
    assert buckets[-1][0] == pytest.approx(4.0, rel=1e-3)


def test_count_buckets_are_not_scaled_and_empty_has_none():
    """Count histograms give raw counts; an empty histogram has no buckets."""
    hist = Histogram("reconnect_attempts", "count")
    for n in (1, 1, 3):
        hist.record(n)
    assert hist.buckets() == [(1.0, 1.0, 2), (3.0, 3.0, 1)]
    assert Histogram("detect_time").buckets() == []
