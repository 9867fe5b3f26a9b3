"""Relative criteria on interleaved rounds: the ratio interval and its three outcomes."""

from __future__ import annotations

import math
import random

import pytest

from wsctl.metrics.stats import decide, ratio_interval, t975


def test_identical_ratios_give_a_zero_width_interval() -> None:
    """Every round 0.6x: estimate, low and high are all 0.6."""
    interval = ratio_interval([10.0, 20.0, 5.0], [6.0, 12.0, 3.0])
    assert interval.estimate == pytest.approx(0.6)
    assert interval.low == pytest.approx(0.6) and interval.high == pytest.approx(0.6)


def test_interval_matches_a_hand_computed_t_interval() -> None:
    """Log-ratios 0, ln 2: mean ln(2)/2, sd ln(2)/sqrt(2), t(1) = 12.706."""
    interval = ratio_interval([1.0, 1.0], [1.0, 2.0])
    mean, sd = math.log(2) / 2, math.log(2) / math.sqrt(2)
    half = 12.706 * sd / math.sqrt(2)
    assert interval.estimate == pytest.approx(math.sqrt(2))
    assert interval.low == pytest.approx(math.exp(mean - half))
    assert interval.high == pytest.approx(math.exp(mean + half))


def test_pass_fail_and_inconclusive_for_an_upper_bound() -> None:
    """<= 0.8: interval all below -> pass, all above -> fail, straddling -> inconclusive."""
    clearly_faster = ratio_interval([10, 10, 10, 10, 10], [6.0, 6.2, 5.9, 6.1, 6.0])
    assert decide(clearly_faster, "<=", 0.8) == "pass"
    no_faster = ratio_interval([10, 10, 10, 10, 10], [9.8, 10.1, 9.9, 10.3, 9.7])
    assert decide(no_faster, "<=", 0.8) == "fail"
    noisy = ratio_interval([10, 10, 10, 10, 10], [5.0, 11.0, 6.0, 10.0, 7.5])
    assert noisy.low < 0.8 < noisy.high
    assert decide(noisy, "<=", 0.8) == "inconclusive"


def test_lower_bounds_mirror_upper_bounds() -> None:
    """>= 2 (e.g. throughput doubled): all above -> pass, all below -> fail."""
    up = ratio_interval([1, 1, 1, 1], [2.5, 2.6, 2.4, 2.5])
    assert decide(up, ">=", 2.0) == "pass"
    assert decide(up, ">", 3.0) == "fail"
    with pytest.raises(ValueError, match="needs <, <=, > or >="):
        decide(up, "==", 1.0)


def test_coverage_is_about_95_percent_on_synthetic_rounds() -> None:
    """Lognormal noise around a true ratio of 0.75: the interval holds it ~95% of the time."""
    rng = random.Random(7)
    hits, trials = 0, 2000
    for _ in range(trials):
        base = [math.exp(rng.gauss(0, 0.2)) * 10 for _ in range(5)]
        cand = [b * 0.75 * math.exp(rng.gauss(0, 0.1)) for b in base]
        interval = ratio_interval(base, cand)
        hits += interval.low <= 0.75 <= interval.high
    assert 0.92 <= hits / trials <= 0.98


def test_bad_rounds_are_refused() -> None:
    """One round, unequal lengths or a zero figure cannot give an interval."""
    with pytest.raises(ValueError):
        ratio_interval([1.0], [1.0])
    with pytest.raises(ValueError):
        ratio_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        ratio_interval([1.0, 0.0], [1.0, 1.0])
    assert t975(40) == pytest.approx(1.96)
