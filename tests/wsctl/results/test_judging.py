"""Judging that knows its limits: unmeasured reasons, a distorting instrument, rounds."""

from __future__ import annotations

from wsctl.metrics import MetricSet, Result
from wsctl.metrics.instrument import Instrument, ProcessHealth
from wsctl.results.criteria import judge, judge_instrumented, judge_rounds, parse


def _timed(name: str, *values: float, details: dict | None = None) -> Result:
    metrics = MetricSet()
    for value in values:
        metrics.histogram(name).record(value)
    return Result("run", metrics, details=details or {})


def test_an_unmeasurable_metric_is_an_error_saying_what_to_configure() -> None:
    """No messages.lost in listen mode without a sequence: ERROR with the reason."""
    result = Result("run", MetricSet(), details={"unmeasured": {
        "messages.lost": "listen mode has no sequence numbers: set probes.protocol.sequence"}})
    verdict = judge(parse("messages.lost", "== 0"), result)
    assert verdict.status == "error"
    assert "probes.protocol.sequence" in verdict.message


def test_a_saturated_instrument_makes_timing_verdicts_inconclusive_only() -> None:
    """Loop lag p99 630 ms: reconnect_time is inconclusive, a count criterion is not."""
    metrics = MetricSet()
    metrics.histogram("reconnect_time").record(0.5)
    metrics.add("probes.gave_up", 0)
    result = Result("run", metrics)
    verdicts = [judge(parse("reconnect_time.mean", "< 5s"), result),
                judge(parse("probes.gave_up", "== 0"), result)]
    lagging = Instrument((ProcessHealth("probes", 0.5, 0.63, 0.9),))
    timing, count = judge_instrumented(verdicts, lagging)
    assert timing.status == "inconclusive" and "630 ms" in timing.message
    assert count.status == "pass"
    quiet = Instrument((ProcessHealth("probes", 0.2, 0.002, 0.01),))
    assert [v.status for v in judge_instrumented(verdicts, quiet)] == ["pass", "pass"]


def test_a_figure_within_the_worst_stall_of_its_bound_is_inconclusive() -> None:
    """p99 4.9 s vs < 5 s with a 200 ms stall: neither PASS nor FAIL."""
    verdict = judge(parse("reconnect_time.max", "< 5s"), _timed("reconnect_time", 4.9))
    assert verdict.status == "pass"
    stalled = Instrument((ProcessHealth("probes", 0.3, 0.01, 0.2),))
    (after,) = judge_instrumented([verdict], stalled)
    assert after.status == "inconclusive" and "worst loop stall" in after.message


def test_rounds_pass_fail_and_inconclusive_with_the_interval_shown() -> None:
    """<= 0.8 x baseline over 4 rounds: clearly faster passes, equal fails, noisy is
    inconclusive; the interval is in the verdict's JSON and message."""
    criterion = parse("connect_time.p50", "<= 0.8 * baseline")
    base = [_timed("connect_time", 0.010) for _ in range(4)]
    fast = [_timed("connect_time", v) for v in (0.0060, 0.0062, 0.0059, 0.0061)]
    same = [_timed("connect_time", v) for v in (0.0099, 0.0101, 0.0100, 0.0102)]
    noisy = [_timed("connect_time", v) for v in (0.005, 0.011, 0.006, 0.010)]
    passed = judge_rounds(criterion, fast, base)
    assert passed.status == "pass" and passed.interval is not None
    assert passed.to_json()["interval"]["rounds"] == 4
    assert "95% interval" in passed.message
    assert judge_rounds(criterion, same, base).status == "fail"
    unsure = judge_rounds(criterion, noisy, base)
    assert unsure.status == "inconclusive" and "straddles" in unsure.message


def test_rounds_without_the_figure_are_an_error() -> None:
    """A round where the metric has no samples cannot be judged: ERROR, never PASS."""
    criterion = parse("connect_time.p50", "<= 0.8 * baseline")
    base = [_timed("connect_time", 0.01), _timed("connect_time", 0.01)]
    cand = [_timed("connect_time", 0.005), _timed("connect_time")]
    assert judge_rounds(criterion, cand, base).status == "error"
    assert judge_rounds(criterion, cand[:1], base[:1]).status == "error"
