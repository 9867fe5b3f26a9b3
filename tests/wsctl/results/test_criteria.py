"""Criteria: parsing with units, judging against results and baselines."""

from __future__ import annotations

import pytest

from wsctl.metrics import MetricSet, Result
from wsctl.results.criteria import (
    CriterionError,
    describe_threshold,
    format_value,
    judge,
    parse,
    parse_all,
)


def _result(**figures: float) -> Result:
    metrics = MetricSet()
    for name, value in figures.items():
        key = name.replace("__", ".")
        if key.endswith("_time"):
            metrics.histogram(key).record(value)
        elif key.startswith("server."):
            metrics.set_gauge(key, value, "bytes")
        else:
            metrics.add(key, int(value))
    return Result.from_dict(Result("run", metrics).to_dict())


@pytest.mark.parametrize(
    ("key", "expect", "value"),
    [
        ("reconnect_time.mean", "< 5s", 5.0),
        ("reconnect_time.p99", "<=250ms", 0.25),
        ("reconnect_time.p99.9", "< 1500us", 0.0015),
        ("reconnect_time.max", "< 2m", 120.0),
        ("server.rss_per_connection", "<= 32KiB", 32 * 1024),
        ("server.rss_per_connection", "<= 1MiB", 1024 * 1024),
        ("server.rss", "< 500000", 500000),
        ("generator.cpu", "< 90%", 0.9),
        ("generator.cpu", "< 0.9", 0.9),
        ("messages.lost", "== 0", 0),
        ("reconnect_time.count", ">= 10", 10),
        ("errors.refused", "== 0", 0),
    ],
)
def test_units_convert_to_the_metric_base_unit(key: str, expect: str, value: float) -> None:
    """A threshold written with a unit is held in the metric's base unit."""
    criterion = parse(key, expect)
    assert criterion.value == pytest.approx(value)
    assert not criterion.relative


@pytest.mark.parametrize(
    ("key", "expect", "fragment"),
    [
        ("reconect_time.mean", "< 5s", "did you mean 'reconnect_time.mean'"),
        ("reconnect_time", "< 5s", "name a statistic"),
        ("messages.lost.p50", "< 1", "has no statistic"),
        ("reconnect_time.mean", "< 5", "give a unit"),
        ("messages.lost", "< 5s", "cannot be compared in 's'"),
        ("server.rss_per_connection", "< 5KB", "cannot be compared in 'KB'"),
        ("messages.lost", "about 3", "write an operator"),
        ("messages.lost", "=< 3", "write an operator"),
    ],
)
def test_bad_criteria_say_what_to_write(key: str, expect: str, fragment: str) -> None:
    """Unknown metrics, missing statistics and wrong units are input errors."""
    with pytest.raises(CriterionError, match=None) as info:
        parse(key, expect)
    assert fragment in str(info.value)


def test_judging_compares_measured_with_threshold() -> None:
    """Each operator decides pass or fail on the measured figure."""
    result = _result(reconnect_time=1.5, messages__lost=2)
    assert judge(parse("reconnect_time.mean", "< 5s"), result).status == "pass"
    assert judge(parse("reconnect_time.mean", "> 2s"), result).status == "fail"
    lost = judge(parse("messages.lost", "== 0"), result)
    assert (lost.status, lost.measured, lost.threshold) == ("fail", 2.0, 0.0)
    assert judge(parse("messages.lost", "!= 0"), result).passed


def test_metric_absent_or_empty_is_an_error_never_a_pass() -> None:
    """A criterion on something not measured fails the run with status error."""
    result = _result(messages__lost=0)
    absent = judge(parse("detect_time.mean", "< 1s"), result)
    assert absent.status == "error" and "not measured" in absent.message
    metrics = MetricSet()
    metrics.histogram("reconnect_time")
    empty = judge(parse("reconnect_time.p99", "< 1s"), Result("run", metrics))
    assert empty.status == "error" and "no samples" in empty.message
    assert not empty.passed


def test_baseline_criteria_scale_the_baseline_figure() -> None:
    """"<= 0.8 * baseline" passes at 80% of the baseline and fails above it."""
    baseline = _result(connect_time=0.010, server__rss_per_connection=40_000)
    criterion = parse("connect_time.p50", "<= 0.8 * baseline")
    good = judge(criterion, _result(connect_time=0.007), baseline)
    bad = judge(criterion, _result(connect_time=0.009), baseline)
    assert good.status == "pass" and good.threshold == pytest.approx(0.008, rel=0.01)
    assert bad.status == "fail"
    memory = parse("server.rss_per_connection", "<= 0.85 * baseline")
    assert judge(memory, _result(server__rss_per_connection=30_000), baseline).passed
    assert "× baseline" in describe_threshold(judge(memory, _result(
        server__rss_per_connection=30_000), baseline))


def test_baseline_missing_is_an_error() -> None:
    """A relative criterion without a baseline, or with a baseline lacking the
    figure, is an error."""
    criterion = parse("connect_time.p50", "<= 0.8 * baseline")
    result = _result(connect_time=0.01)
    assert judge(criterion, result, None).status == "error"
    assert judge(criterion, result, _result(messages__lost=0)).status == "error"


def test_parse_all_takes_both_forms() -> None:
    """A criterion is a string or {expect, ep}; the EP sentence is kept."""
    criteria = parse_all({"messages.lost": "== 0",
                          "reconnect_time.mean": {"expect": "< 5s", "ep": "within 5 s"}})
    assert [c.ep for c in criteria] == [None, "within 5 s"]


def test_format_value_reads_like_a_person_writes() -> None:
    """Figures are shown in the unit people expect."""
    assert format_value(0.0123, "s") == "12.3 ms"
    assert format_value(4.2, "s") == "4.2 s"
    assert format_value(28364.8, "bytes") == "27.7 KiB"
    assert format_value(0.42, "ratio") == "42.0 %"
    assert format_value(3, "count") == "3"
    assert format_value(None, "s") == "—"
