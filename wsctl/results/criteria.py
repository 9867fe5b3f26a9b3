"""Criteria: ``metric.stat: "OP value"`` parsed once, judged against a result.

    reconnect_time.mean: "< 5s"              durations take us, ms, s or m
    messages.lost: "== 0"                    counts are bare numbers
    server.rss_per_connection: "<= 32KiB"    bytes take B, KiB or MiB
    generator.cpu: "< 90%"                   ratios take % or a bare fraction
    connect_time.p50: "<= 0.8 * baseline"    k times the same figure of a baseline result

Parsing checks the metric against the catalog (``wsctl.metrics.catalog``) and the unit
against the metric, so a typo is an input error before anything runs. Judging never
passes what it cannot measure: a metric absent from the result, a histogram with no
samples or a missing baseline is a verdict of ``error``, which fails the run.

A figure that was measured but cannot be trusted (the instrument was saturated, or the
confidence interval of a relative criterion straddles its bound) is ``inconclusive``:
``judge(..., inconclusive=REASON)`` gives it directly, and ``downgrade`` turns the
pass/fail verdicts of timing criteria into it after judging. Pure functions; no I/O.
"""

from __future__ import annotations

import math
import operator
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from wsctl.metrics import Result
from wsctl.metrics.catalog import MetricInfo, MetricUnit, split
from wsctl.metrics.instrument import Instrument
from wsctl.metrics.stats import decide, ratio_interval

Status = Literal["pass", "fail", "error", "inconclusive"]

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, ">": operator.gt,
}
_EXPR = re.compile(
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?:(?P<factor>\d+(?:\.\d*)?|\.\d+)\s*\*\s*baseline|(?P<bare>baseline)"
    r"|(?P<number>-?\d+(?:\.\d*)?|-?\.\d+)\s*(?P<unit>[A-Za-z%/]+)?)\s*"
)
# Units a person may write, per metric unit: factor to the metric's base unit.
UNITS: dict[MetricUnit, dict[str | None, float]] = {
    "s": {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0},
    "count": {None: 1.0},
    "bytes": {None: 1.0, "B": 1.0, "KiB": 1024.0, "MiB": 1024.0**2},
    "ratio": {None: 1.0, "%": 0.01},
    "per_s": {None: 1.0, "/s": 1.0},
}
_EXAMPLES: dict[MetricUnit, str] = {
    "s": "250ms, 5s or 2m", "count": "a bare number such as 0 or 3",
    "bytes": "32KiB, 1MiB or a number of bytes", "ratio": "90% or 0.9",
    "per_s": "a bare number per second",
}


class CriterionError(ValueError):
    """A criterion that cannot be read; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class Criterion:
    """One check: ``key`` (metric and statistic) ``op`` ``value`` — or, when ``relative``,
    ``op`` ``value`` x the baseline's figure. ``value`` is in the metric's base unit
    (seconds, bytes, a fraction). ``expect`` is the text as written; ``ep`` the sentence
    of the proposal this checks, if any."""

    key: str
    metric: MetricInfo
    stat: str | None
    op: str
    value: float
    relative: bool
    expect: str
    ep: str | None = None

    @property
    def unit(self) -> MetricUnit:
        """The unit of the figure compared ("count" for a histogram's count)."""
        return "count" if self.stat == "count" else self.metric.unit

    def threshold(self, baseline_value: float | None = None) -> float | None:
        """The number the measured figure is compared with."""
        if not self.relative:
            return self.value
        return None if baseline_value is None else self.value * baseline_value

    def holds(self, measured: float, threshold: float) -> bool:
        return OPERATORS[self.op](measured, threshold)


def parse(key: str, expect: str | float | int, ep: str | None = None) -> Criterion:
    """Read one criterion; raises ``CriterionError`` saying what is wrong."""
    try:
        metric, stat = split(key)
    except KeyError as exc:
        raise CriterionError(exc.args[0]) from None
    text = str(expect)
    match = _EXPR.fullmatch(text)
    if match is None:
        raise CriterionError(
            f"cannot read {text!r}: write an operator (<, <=, ==, !=, >=, >) and a value, "
            f"e.g. \"< 5s\", \"== 0\" or \"<= 0.8 * baseline\""
        )
    op = match["op"]
    unit: MetricUnit = "count" if stat == "count" else metric.unit
    if match["factor"] is not None or match["bare"] is not None:
        factor = float(match["factor"]) if match["factor"] is not None else 1.0
        return Criterion(key, metric, stat, op, factor, True, text.strip(), ep)
    written = match["unit"]
    factors = UNITS[unit]
    if written not in factors:
        if written is None:
            problem = f"{key} is a duration: give a unit"
        else:
            problem = f"{key} cannot be compared in {written!r}"
        raise CriterionError(f"{problem}; write {_EXAMPLES[unit]}")
    value = float(match["number"]) * factors[written]
    if not math.isfinite(value):
        raise CriterionError(f"{text!r}: the value must be a finite number")
    return Criterion(key, metric, stat, op, value, False, text.strip(), ep)


def parse_all(criteria: dict[str, Any]) -> list[Criterion]:
    """Parse ``{key: "OP value"}`` or ``{key: {"expect": "OP value", "ep": "…"}}``."""
    out = []
    for key, spec in criteria.items():
        if isinstance(spec, dict):
            out.append(parse(key, spec.get("expect", ""), spec.get("ep")))
        else:
            out.append(parse(key, spec))
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one criterion came out. ``status`` is ``error`` when it could not be judged
    (not measured, no samples, no baseline): that fails the run like ``fail``.
    ``inconclusive`` when the figure was measured but cannot be trusted either way; it
    neither passes nor fails. ``message`` says why for both."""

    criterion: Criterion
    status: Status
    measured: float | None
    threshold: float | None
    baseline: float | None = None
    message: str = ""
    interval: dict[str, Any] | None = None  # relative criteria judged on rounds

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_inconclusive(self, reason: str) -> Verdict:
        """This verdict as ``inconclusive`` because of ``reason`` (figures kept). An
        ``error`` stays an error: nothing was measured that could be doubted."""
        if self.status == "error":
            return self
        return replace(self, status="inconclusive", message=reason)

    def to_json(self) -> dict[str, Any]:
        c = self.criterion
        return {
            "metric": c.key, "expect": c.expect, "ep": c.ep, "unit": c.unit,
            "status": self.status, "measured": self.measured, "threshold": self.threshold,
            "baseline": self.baseline, "message": self.message,
            **({"interval": self.interval} if self.interval is not None else {}),
        }


def _figure(result: Result, key: str) -> float | None:
    value = result.value(key)  # KeyError when the result has no such metric
    return None if value is None else float(value)


def judge(criterion: Criterion, result: Result, baseline: Result | None = None, *,
          inconclusive: str | None = None) -> Verdict:
    """The verdict of one criterion on ``result`` (and ``baseline`` for relative ones).
    ``inconclusive``: why the figures cannot be trusted; a pass or fail becomes
    ``inconclusive`` with that reason (an unjudgeable criterion stays ``error``)."""
    key = criterion.key
    try:
        measured = _figure(result, key)
    except KeyError:
        return Verdict(criterion, "error", None, None, message=unmeasured(criterion, result))
    if measured is None:
        return Verdict(criterion, "error", None, None,
                       message=f"{key} has no samples: nothing happened that it measures")
    base: float | None = None
    if criterion.relative:
        if baseline is None:
            return Verdict(criterion, "error", measured, None,
                           message="a baseline criterion needs a baseline result "
                                   "(--baseline FILE)")
        try:
            base = _figure(baseline, key)
        except KeyError:
            base = None
        if base is None:
            return Verdict(criterion, "error", measured, None,
                           message=f"the baseline result has no figure for {key}")
    threshold = criterion.threshold(base)
    assert threshold is not None
    status: Status = "pass" if criterion.holds(measured, threshold) else "fail"
    verdict = Verdict(criterion, status, measured, threshold, base,
                      message=point_comparison(measured, base) if base is not None else "")
    return verdict if inconclusive is None else verdict.as_inconclusive(inconclusive)


def point_comparison(measured: float, base: float) -> str:
    """What a relative verdict on one run and one baseline figure is: a point
    comparison, with no interval (metrics.stats needs rounds for one)."""
    ratio = f"ratio {measured / base:.3f}" if base > 0 else "a baseline figure of 0"
    return (f"point comparison: {ratio} from one run and one baseline figure, no "
            f"confidence interval (rounds: N on a scenario and its baseline in one run "
            f"give one)")


def judge_all(
    criteria: Iterable[Criterion], result: Result, baseline: Result | None = None
) -> list[Verdict]:
    return [judge(c, result, baseline) for c in criteria]


def unmeasured(criterion: Criterion, result: Result) -> str:
    """Why ``criterion``'s metric is not in ``result``: the reason the measuring side
    gave (``details.unmeasured``: what to configure), else that it was not measured."""
    reasons = result.details.get("unmeasured") or {}
    reason = reasons.get(criterion.metric.name) if isinstance(reasons, dict) else None
    if reason:
        return f"{criterion.metric.name} cannot be measured here: {reason}"
    return f"{criterion.key} was not measured in this run"


def judge_instrumented(verdicts: Iterable[Verdict], instrument: Instrument) -> list[Verdict]:
    """Timing verdicts the instrument may have distorted become ``inconclusive``: all of
    them when it was saturated, else each absolute one nearer its bound than the
    instrument's worst stall (metrics.instrument; docs/reports.md)."""
    verdicts = list(verdicts)
    if not instrument.measured:
        return verdicts
    saturated = instrument.saturation()
    if saturated is not None:
        return downgrade(verdicts, saturated)
    out = []
    for verdict in verdicts:
        reason = None
        if is_timing(verdict.criterion) and not verdict.criterion.relative and \
                verdict.measured is not None and verdict.threshold is not None:
            reason = instrument.too_close(verdict.measured, verdict.threshold)
        out.append(verdict if reason is None else verdict.as_inconclusive(reason))
    return out


def judge_rounds(criterion: Criterion, candidates: Sequence[Result],
                 baselines: Sequence[Result]) -> Verdict:
    """A relative criterion on interleaved rounds: the 95% interval of the ratio
    candidate/baseline (metrics.stats) must meet ``op k`` as a whole to pass, miss it as
    a whole to fail; otherwise ``inconclusive``. The figures shown are the medians."""
    assert criterion.relative
    pairs: list[tuple[float, float]] = []
    for candidate, base in zip(candidates, baselines, strict=False):
        try:
            a, b = _figure(candidate, criterion.key), _figure(base, criterion.key)
        except KeyError:
            return Verdict(criterion, "error", None, None,
                           message=unmeasured(criterion, candidate))
        if a is None or b is None or a <= 0 or b <= 0:
            return Verdict(criterion, "error", a, None,
                           message=f"{criterion.key} has no positive figure in every round")
        pairs.append((b, a))
    if len(pairs) < 2:
        return Verdict(criterion, "error", None, None,
                       message="an interval needs at least two rounds of both scenarios")
    base_figures = [b for b, _ in pairs]
    cand_figures = [a for _, a in pairs]
    unit = criterion.unit
    interval = ratio_interval(base_figures, cand_figures)
    status = decide(interval, criterion.op, criterion.value)
    base_median, cand_median = statistics.median(base_figures), statistics.median(cand_figures)
    text = (f"ratio {interval.estimate:.3f} (95% interval {interval.low:.3f} to "
            f"{interval.high:.3f} over {interval.rounds} interleaved rounds; bound "
            f"{criterion.op} {criterion.value:g}; medians {format_value(cand_median, unit)}"
            f" vs baseline {format_value(base_median, unit)})")
    if status == "inconclusive":
        text += ": the interval straddles the bound - more rounds narrow it"
    figures = {"baseline": base_figures, "candidate": cand_figures}
    return Verdict(criterion, status, cand_median,
                   criterion.value * base_median, base_median, message=text,
                   interval={**interval.to_json(), "figures": figures})


def is_timing(criterion: Criterion) -> bool:
    """Whether the criterion judges a duration: what a saturated instrument distorts."""
    return criterion.unit == "s"


def downgrade(verdicts: Iterable[Verdict], reason: str,
              which: Callable[[Criterion], bool] = is_timing) -> list[Verdict]:
    """The verdicts with every pass or fail of a criterion ``which`` selects (timing ones
    by default) made ``inconclusive`` because of ``reason``; the others unchanged."""
    return [v.as_inconclusive(reason) if which(v.criterion) else v for v in verdicts]


def format_value(value: float | None, unit: MetricUnit) -> str:
    """A figure for people: ``1.24 s``, ``850 ms``, ``27.7 KiB``, ``42 %``, ``0``."""
    if value is None:
        return "—"
    if unit == "s":
        if abs(value) < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"
    if unit == "bytes":
        if abs(value) >= 1024**2:
            return f"{value / 1024**2:.1f} MiB"
        if abs(value) >= 1024:
            return f"{value / 1024:.1f} KiB"
        return f"{value:.0f} B"
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    if unit == "per_s":
        return f"{value:.1f}/s"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def describe_threshold(verdict: Verdict) -> str:
    """The threshold as people read it: ``< 5 s`` or ``<= 0.8 x baseline (41.2 ms)``."""
    c = verdict.criterion
    if verdict.interval is not None:
        return f"{c.op} {c.value:g} × baseline"  # a bound on the ratio; its interval shown
    if c.relative:
        base = format_value(verdict.threshold, c.unit) if verdict.threshold is not None \
            else "no baseline"
        return f"{c.op} {c.value:g} × baseline ({base})"
    return f"{c.op} {format_value(c.value, c.unit)}"
