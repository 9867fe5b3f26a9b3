"""A probe fleet's result for assertions: ``result.reconnect_time.mean``,
``result.messages.lost``, ``result["detect_time.p99"]``.

Every figure is the one the criteria of a scenario would judge (``Result.value``), so an
assertion and a criterion can never disagree. A metric the probes could not measure with
their mode and protocol block raises ``NotMeasured`` saying what to configure (the
reason the probes gave, ``details.unmeasured``); a histogram with no samples raises it
too, saying that nothing happened that it measures — never a silent 0 or None that an
assertion would compare. The views' ``repr`` carries their figures, so pytest's
assertion rewriting prints them under a failing ``assert``::

    assert 6.21 < 5
     +  where 6.21 = reconnect_time(count=5, mean=6.21 s, p50=6.1 s, p99=7.02 s, max=7.02 s).mean

``judge``/``require`` take criteria as a scenario file writes them and answer with
wsctl's own verdicts and criteria table. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsctl.errors import InvalidInput
from wsctl.metrics import Histogram, Result
from wsctl.probe.machine import COUNTERS, HISTOGRAMS
from wsctl.results.criteria import Verdict, format_value, judge_all, parse_all
from wsctl.results.outcome import ScenarioOutcome

STATS = ("count", "mean", "min", "p50", "p90", "p99", "p99_9", "max")
_KNOWN = {name for name, _ in HISTOGRAMS} | set(COUNTERS)
_GROUPS = {name.split(".", 1)[0] for name in COUNTERS if "." in name} | {"errors", "server"}


class NotMeasured(InvalidInput):
    """A figure the run does not have: not measurable as configured, or no samples."""


def _reason(result: Result, name: str) -> str:
    reasons = result.details.get("unmeasured") or {}
    reason = reasons.get(name) if isinstance(reasons, dict) else None
    if reason:
        return f"{name} cannot be measured by these probes: {reason}"
    return f"{name} was not measured in this run"


class HistogramView:
    """One duration (or count) histogram: ``count``, ``mean``, ``min``, ``p50``, ``p90``,
    ``p99``, ``p99_9``, ``max`` (seconds for durations). A statistic of an empty
    histogram raises ``NotMeasured``."""

    def __init__(self, name: str, histogram: Histogram) -> None:
        self.name = name
        self.histogram = histogram
        self._summary = histogram.summary()

    def __getattr__(self, stat: str) -> float:
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        key = "p99.9" if stat == "p99_9" else stat
        if stat.startswith("_") or key not in self._summary:
            raise AttributeError(f"{self.name} has no statistic {stat!r} (one of: "
                                 f"{', '.join(STATS)})")
        value = self._summary[key]
        if value is None:
            raise NotMeasured(f"{self.name} has no samples: nothing happened that it "
                              f"measures, so {self.name}.{stat} has no value")
        return float(value)

    @property
    def count(self) -> int:
        return int(self._summary["count"])

    def __repr__(self) -> str:
        unit = self.histogram.unit
        if not self.count:
            return f"{self.name}(count=0: no samples)"
        figures = ", ".join(f"{stat}={format_value(self._summary[stat], unit)}"
                            for stat in ("mean", "p50", "p99", "max"))
        return f"{self.name}(count={self.count}, {figures})"


class MetricGroup:
    """The counters under one prefix: ``result.messages.lost``."""

    def __init__(self, result: Result, prefix: str) -> None:
        self._result = result
        self._prefix = prefix

    def __getattr__(self, leaf: str) -> float:
        __tracebackhide__ = True
        if leaf.startswith("_"):
            raise AttributeError(leaf)
        return ProbeResult(self._result)[f"{self._prefix}.{leaf}"]

    def _members(self) -> dict[str, float]:
        metrics = self._result.metrics
        start = self._prefix + "."
        out: dict[str, float] = {k[len(start):]: v for k, v in metrics.counters.items()
                                 if k.startswith(start)}
        out.update({k[len(start):]: g.value for k, g in metrics.gauges.items()
                    if k.startswith(start)})
        return out

    def __repr__(self) -> str:
        members = self._members()
        shown = ", ".join(f"{k}={v:g}" for k, v in members.items() if
                          self._prefix != "errors" or v)  # the error kinds that happened
        return f"{self._prefix}({shown or 'nothing measured'})"


class ProbeResult:
    """What a probe fleet measured, by metric name (docs/metrics.md). ``result`` is the
    underlying ``wsctl.metrics.Result`` (``result.to_dict()`` is its JSON)."""

    def __init__(self, result: Result) -> None:
        self.result = result

    def __getitem__(self, key: str) -> float:
        """A figure by criterion name: ``messages.lost``, ``reconnect_time.p99``."""
        __tracebackhide__ = True
        try:
            value = self.result.value(key)
        except KeyError:
            name = key if key in self.result.metrics.counters else key.rpartition(".")[0]
            if key in _KNOWN or name in _KNOWN:
                raise NotMeasured(_reason(self.result, key if key in _KNOWN else name)) \
                    from None
            raise KeyError(f"no metric named {key!r}; measured: "
                           f"{', '.join(self.measured())}") from None
        if value is None:
            name = key.rpartition(".")[0]
            raise NotMeasured(f"{name} has no samples: nothing happened that it measures, "
                              f"so {key} has no value")
        return value

    def __getattr__(self, name: str) -> Any:
        __tracebackhide__ = True
        if name.startswith("_"):
            raise AttributeError(name)
        metrics = self.result.metrics
        if name in metrics.histograms:
            return HistogramView(name, metrics.histograms[name])
        if name in metrics.counters or name in metrics.gauges:
            return self[name]
        if name in _GROUPS:
            return MetricGroup(self.result, name)
        if name in _KNOWN:
            raise NotMeasured(_reason(self.result, name))
        raise AttributeError(f"no metric named {name!r}; measured: "
                             f"{', '.join(self.measured())}")

    def measured(self) -> list[str]:
        """Every metric this result has, by name."""
        metrics = self.result.metrics
        return sorted([*metrics.histograms, *metrics.counters, *metrics.gauges])

    @property
    def details(self) -> dict[str, Any]:
        """Probes, their states, errors, faults marked (``Result.details``)."""
        return self.result.details

    def judge(self, criteria: Mapping[str, Any]) -> list[Verdict]:
        """The verdicts of ``criteria`` written as in a scenario file
        (``{"reconnect_time.mean": "< 5s", "messages.lost": "== 0"}``)."""
        try:
            parsed = parse_all(dict(criteria))
        except ValueError as exc:
            raise InvalidInput(f"criteria: {exc}") from None
        return judge_all(parsed, self.result)

    def require(self, criteria: Mapping[str, Any], name: str = "criteria") -> None:
        """Raise ``AssertionError`` with wsctl's criteria table unless every criterion
        passes (an unmeasured metric is an ERROR row: it fails too)."""
        verdicts = self.judge(criteria)
        if not all(v.passed for v in verdicts):
            outcome = ScenarioOutcome(name, "", "", self.result, verdicts)
            raise AssertionError("\n" + outcome_text(outcome))

    def __repr__(self) -> str:
        metrics = self.result.metrics
        parts = [repr(HistogramView(name, metrics.histograms[name]))
                 for name in ("reconnect_time", "detect_time") if name in metrics.histograms]
        if "messages" in {k.split(".", 1)[0] for k in metrics.counters}:
            parts.append(repr(MetricGroup(self.result, "messages")))
        probes = self.result.details.get("probes")
        return f"ProbeResult({probes} probes, {self.result.duration:.1f} s: " + \
            "; ".join(parts) + ")"


def outcome_text(outcome: ScenarioOutcome, width: int = 100) -> str:
    """A scenario's criteria table, notes and timeline as plain text (the console
    report's own rendering, without colour)."""
    import io

    from rich.console import Console

    from wsctl.report.console import scenario_view

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False,
                      highlight=False)
    console.print(scenario_view(outcome))
    return buffer.getvalue().rstrip()


__all__ = ["HistogramView", "MetricGroup", "NotMeasured", "ProbeResult", "outcome_text"]
