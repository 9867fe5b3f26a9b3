"""HDR-backed histograms: units, summaries, clamping, exact merging."""

import pytest

from wsctl.metrics import Histogram, MetricSet


def test_summary_is_in_seconds_with_all_statistics():
    """Values recorded in seconds come back in seconds with count/mean/p50…max."""
    hist = Histogram("rtt")
    for ms in range(1, 101):  # 1 ms … 100 ms
        hist.record(ms / 1000)
    s = hist.summary()
    assert s["count"] == 100
    assert s["mean"] == pytest.approx(0.0505, rel=1e-3)
    assert s["p50"] == pytest.approx(0.050, rel=2e-3)
    assert s["p90"] == pytest.approx(0.090, rel=2e-3)
    assert s["p99"] == pytest.approx(0.099, rel=2e-3)
    assert s["p99.9"] == pytest.approx(0.100, rel=2e-3)
    assert s["max"] == pytest.approx(0.100, rel=2e-3)
    assert s["min"] == pytest.approx(0.001, rel=2e-3)


def test_empty_summary_has_nulls_not_zeros():
    """An empty histogram reports count 0 and None statistics (0 would be a lie)."""
    s = Histogram("detect_time").summary()
    assert s["count"] == 0 and s["p99"] is None and s["mean"] is None


def test_count_unit_is_not_scaled():
    """Count histograms (reconnect_attempts) report raw counts."""
    hist = Histogram("reconnect_attempts", "count")
    for n in (1, 1, 3):
        hist.record(n)
    assert hist.summary()["max"] == 3 and hist.summary()["p50"] == 1


def test_out_of_range_values_are_clamped_and_counted():
    """Negative (clock skew) and over-an-hour values are kept at the bounds and counted."""
    hist = Histogram("delivery_latency")
    hist.record(-0.5)
    hist.record(7200)
    assert hist.count == 2 and hist.clamped == 2
    assert hist.summary()["min"] == 0
    assert hist.summary()["max"] == pytest.approx(3600, rel=1e-3)


def test_merge_equals_recording_everything_in_one():
    """Merging histograms gives the same percentiles as one histogram of all values."""
    a, b, both = Histogram("x"), Histogram("x"), Histogram("x")
    for i in range(1000):
        (a if i % 3 else b).record(i / 1000)
        both.record(i / 1000)
    a.merge(b)
    assert a.summary() == both.summary()


def test_merge_refuses_mixed_units():
    """Seconds and counts never mix."""
    with pytest.raises(ValueError):
        Histogram("x").merge(Histogram("y", "count"))


def test_encode_decode_round_trip():
    """The base64 HDR encoding rebuilds the same distribution in another process."""
    hist = Histogram("rtt")
    for v in (0.001, 0.002, 0.5, 2.0):
        hist.record(v)
    again = Histogram.decode("rtt", "s", hist.encode())
    assert again.summary() == hist.summary()


def test_cumulative_buckets_for_prometheus():
    """cumulative() counts values at or under each bound."""
    hist = Histogram("rtt")
    for v in (0.001, 0.02, 0.02, 3.0):
        hist.record(v)
    assert hist.cumulative([0.01, 0.1, 1, 10]) == [1, 3, 3, 4]


def test_metric_set_merge_adds_counters_and_histograms():
    """MetricSet.merge adds counters and merges histograms by name."""
    a = MetricSet([("rtt", "s")], ["messages.lost"])
    b = MetricSet([("rtt", "s")], ["messages.lost"])
    a.record("rtt", 0.1)
    b.record("rtt", 0.2)
    b.add("messages.lost", 2)
    b.add("resyncs")
    a.merge(b)
    assert a.counters == {"messages.lost": 2, "resyncs": 1}
    assert a.histograms["rtt"].count == 2


def test_fast_summary_matches_hdrhistogram_exactly():
    """The one-pass summary and buckets equal hdrhistogram's own (slow) answers."""
    import random

    rng = random.Random(4)
    hist = Histogram("x")
    for _ in range(5000):
        hist.record(rng.expovariate(rng.choice([1000, 10, 0.5])))
    hist.record(0)
    hdr = hist._hdr
    s = hist.summary()
    assert s["mean"] == hdr.get_mean_value() / 1e6
    for name, pct in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
        assert s[name] == hdr.get_value_at_percentile(pct) / 1e6
    assert (s["min"], s["max"]) == (hdr.get_min_value() / 1e6, hdr.get_max_value() / 1e6)
    bounds = [0.001, 0.01, 0.1, 1, 10]
    expected = [sum(item.count_at_value_iterated_to for item in hdr.get_recorded_iterator()
                    if item.value_iterated_to <= b * 1e6) for b in bounds]
    assert hist.cumulative(bounds) == expected
