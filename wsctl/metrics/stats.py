"""A confidence interval on the ratio of two figures measured in interleaved rounds.

A relative criterion (``connect_time.p50: "<= 0.8 * baseline"``) compares a figure of a
candidate with the same figure of a baseline. On a shared machine one pair of runs says
little: the machine's state moves both figures. So the pair runs in ``N`` interleaved
rounds (baseline, candidate, baseline, candidate, ...), each round giving one ratio
``r_i = candidate_i / baseline_i``, and the criterion is judged on a confidence interval
for the ratio, not on one number.

Method: the paired log-ratios ``d_i = ln r_i`` and a Student t interval on their mean,
transformed back (``exp``): an interval for the geometric mean ratio. This is the
standard method for ratios of positive, right-skewed figures measured in pairs — the
one used for average bioequivalence (FDA guidance "Statistical Approaches to
Establishing Bioequivalence", 2001; Schuirmann 1987, "A comparison of the two one-sided
tests procedure...", J. Pharmacokinet. Biopharm. 15:657). It assumes the log-ratios are
roughly normal and the rounds independent; interleaving the rounds is what makes a slow
drift of the machine hit both sides alike.

The decision: PASS when the whole interval meets the bound, FAIL when the whole
interval misses it, INCONCLUSIVE when it straddles the bound (more rounds narrow it).
Pure functions; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

RatioStatus = Literal["pass", "fail", "inconclusive"]

# Two-sided 95% Student t quantiles (t_{0.975, df}) for df = 1..30; past 30 the normal
# quantile is within 2%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.960
CONFIDENCE = 0.95


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("a t interval needs at least two rounds")
    return _T975[df - 1] if df <= len(_T975) else _Z975


@dataclass(frozen=True, slots=True)
class RatioInterval:
    """The geometric mean ratio over ``rounds`` and its 95% interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    rounds: int
    ratios: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "rounds": self.rounds, "confidence": CONFIDENCE,
                "method": "t interval on paired log-ratios (geometric mean ratio)",
                "ratios": list(self.ratios)}


def ratio_interval(baseline: Sequence[float], candidate: Sequence[float]) -> RatioInterval:
    """The interval for ``candidate / baseline`` from paired rounds (same length, >= 2,
    every figure > 0; ``ValueError`` otherwise)."""
    if len(baseline) != len(candidate):
        raise ValueError("baseline and candidate need one figure per round each")
    if len(baseline) < 2:
        raise ValueError("a confidence interval needs at least two rounds")
    if any(not (v > 0 and math.isfinite(v)) for v in (*baseline, *candidate)):
        raise ValueError("ratios need positive, finite figures")
    ratios = tuple(c / b for b, c in zip(baseline, candidate, strict=True))
    logs = [math.log(r) for r in ratios]
    n = len(logs)
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return RatioInterval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n,
                         ratios)


def decide(interval: RatioInterval, op: str, bound: float) -> RatioStatus:
    """PASS when every ratio in the interval satisfies ``ratio OP bound``, FAIL when none
    does, INCONCLUSIVE otherwise. ``==`` and ``!=`` cannot be decided this way."""
    low, high = interval.low, interval.high
    if op in ("<", "<="):
        meets_all = high < bound if op == "<" else high <= bound
        misses_all = low >= bound if op == "<" else low > bound
    elif op in (">", ">="):
        meets_all = low > bound if op == ">" else low >= bound
        misses_all = high <= bound if op == ">" else high < bound
    else:
        raise ValueError(f"a relative criterion judged on rounds needs <, <=, > or >=, "
                         f"not {op}")
    if meets_all:
        return "pass"
    if misses_all:
        return "fail"
    return "inconclusive"


__all__ = ["CONFIDENCE", "RatioInterval", "decide", "ratio_interval", "t975"]
