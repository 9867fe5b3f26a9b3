"""A bench's verdicts and its run report: judged exactly as ``wsctl run`` judges, and
shaped as the run report every ``wsctl.report`` format renders (console, JSON, JUnit,
Markdown, HTML) — one "scenario" named ``bench``, with no timeline.

    verdicts = judge(criteria, result, baseline)
    report = bench_report(result, verdicts)
    write_all(report, Path("reports"))
"""

from __future__ import annotations

from typing import Any

from wsctl.metrics import Result
from wsctl.metrics.instrument import Instrument
from wsctl.results.criteria import Criterion, Verdict, judge_all, judge_instrumented
from wsctl.results.outcome import RunReport, ScenarioOutcome, Series

NAME = "bench"


def judge(criteria: list[Criterion], result: Result, baseline: Result | None) -> list[Verdict]:
    """Judge the criteria exactly as ``wsctl run`` does (timing verdicts a saturated
    generator may have distorted are inconclusive); the verdicts go in the details."""
    instrument = Instrument.from_json(result.details.get("instrument") or [])
    verdicts = judge_instrumented(judge_all(criteria, result, baseline), instrument)
    result.details["criteria"] = [v.to_json() for v in verdicts]
    return verdicts


def describe(config: dict[str, Any]) -> str:
    """The plan in one line: ``100 connections at 100/s, echo, 1 message/s each``."""
    connections = config.get("connections", config.get("users"))
    rate = config.get("connect_rate", config.get("spawn_rate"))
    parts = []
    if connections is not None:
        parts.append(f"{connections} connections" + (f" at {rate:g}/s" if rate else ""))
    if config.get("mode"):
        parts.append(str(config["mode"]))
    if config.get("message_rate"):
        parts.append(f"{config['message_rate']:g} message/s each")
    return ", ".join(parts)


def series(result: Result) -> Series:
    """The bench's per-second samples as a report series: connections held (the
    report's ``connections`` column) and whatever else was sampled, under its own name."""
    sampled = dict(result.details.get("series") or {})
    t = list(sampled.pop("t", []) or [])
    interval = float(sampled.pop("interval", 1.0) or 1.0)
    columns = {("connections" if k == "connections_held" else k): list(v)
               for k, v in sampled.items() if isinstance(v, list) and len(v) == len(t)}
    return Series(interval=interval, t=t, columns=columns if t else {})


def bench_report(result: Result, verdicts: list[Verdict], *,
                 error: str | None = None) -> RunReport:
    """The run report of one bench (``command="bench"``, the target as its suite);
    ``error`` says why it could not run (nothing connected, say)."""
    outcome = ScenarioOutcome(
        name=NAME, description=describe(result.config), file="", result=result,
        verdicts=verdicts, series=series(result), error=error)
    return RunReport(suite=result.target or "", file="", scenarios=[outcome],
                     started_at=result.started_at, duration=result.duration,
                     command="bench")
