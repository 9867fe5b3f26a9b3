"""A scenario run in several rounds, summed up as one outcome.

A scenario with ``rounds: N`` runs in N interleaved pairs with its baseline scenario
(``wsctl.scenario.runner``). Each round is a complete run, judged like any other; this
module turns the rounds of one scenario into the one outcome the reports show:

- a relative criterion (``k * baseline``) is judged on the interval of the per-round
  ratios (``judge_pairs``: ``criteria.judge_rounds``, the t interval of
  ``wsctl.metrics.stats``), leaving out the pairs in which either side's instrument was
  saturated;
- an absolute criterion is judged on every round and takes its worst round's verdict
  (``worst_round``): its threshold was written for one run of the scenario (a count such
  as ``probes.gave_up == 20`` or a peak rate does not add up over rounds), and a
  problem that shows in one round must not be averaged away by the others;
- the result is the rounds merged (``merge_rounds``): histograms merged, counters
  summed, gauges the median of the rounds (a per-connection figure or a peak does not
  add up over rounds either).

Pure functions; no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace

from wsctl.metrics import Gauge, Result, merge
from wsctl.metrics.instrument import Instrument
from wsctl.results.criteria import (
    Criterion,
    Status,
    Verdict,
    format_value,
    is_timing,
    judge_rounds,
)
from wsctl.results.outcome import ScenarioOutcome

# Which round's verdict sums up an absolute criterion: the worst.
_SEVERITY: dict[Status, int] = {"fail": 3, "error": 2, "inconclusive": 1, "pass": 0}


def merge_rounds(results: Sequence[Result]) -> Result:
    """The rounds of one scenario as one result: histograms merged (HDR), counters
    summed, each gauge the median of the rounds that have it; ``started_at`` is the first
    round's, ``duration`` the rounds' total, ``details`` the first round's plus
    ``rounds`` (how many were merged)."""
    merged = merge(list(results))
    for name, gauge in merged.metrics.gauges.items():
        values = [r.metrics.gauges[name].value for r in results if name in r.metrics.gauges]
        merged.metrics.gauges[name] = Gauge(statistics.median(values), gauge.unit)
    first = results[0]
    merged.started_at = first.started_at
    merged.duration = sum(r.duration for r in results)
    merged.details = {**first.details, "rounds": len(results)}
    return merged


def worst_round(index: int, rounds: Sequence[ScenarioOutcome]) -> Verdict:
    """Criterion ``index`` over every round: the worst round's verdict (fail, error,
    inconclusive, pass; the earliest of equals), its message naming that round and
    every round's figure."""
    verdicts = [outcome.verdicts[index] for outcome in rounds]
    worst = max(range(len(verdicts)), key=lambda k: (_SEVERITY[verdicts[k].status], -k))
    verdict = verdicts[worst]
    unit = verdict.criterion.unit
    figures = ", ".join(format_value(v.measured, unit) for v in verdicts)
    text = f"worst of {len(verdicts)} rounds: round {worst + 1} (each round: {figures})"
    if verdict.message:
        text += f"; {verdict.message}"
    return replace(verdict, message=text)


def judge_pairs(criterion: Criterion, index: int, candidates: Sequence[ScenarioOutcome],
                baselines: Sequence[ScenarioOutcome]) -> Verdict:
    """Relative criterion ``index`` of the candidate on its paired rounds: the interval
    verdict (``judge_rounds``) on the pairs the instrument can vouch for.

    A pair is left out when the candidate round's own verdict was doubted
    (``inconclusive``: its measuring side was saturated) or, for a timing criterion, when
    the baseline round's measuring side was saturated: either figure then carries the
    instrument's own delay, and a delay on the baseline's side makes the ratio look
    better than it is. The interval is on the rest, the message names the rounds left
    out and why; with fewer than two pairs left the verdict is inconclusive."""
    kept: list[tuple[ScenarioOutcome, ScenarioOutcome]] = []
    left_out: list[tuple[int, str]] = []
    for number, (candidate, base) in enumerate(zip(candidates, baselines, strict=False), 1):
        if candidate.result is None or base.result is None:
            continue
        own = candidate.verdicts[index] if index < len(candidate.verdicts) else None
        reason = own.message if own is not None and own.status == "inconclusive" else None
        if reason is None and is_timing(criterion):
            instrument = Instrument.from_json(base.result.details.get("instrument") or [])
            saturated = instrument.saturation() if instrument.measured else None
            if saturated is not None:
                reason = f"its baseline round: {saturated}"
        if reason is None:
            kept.append((candidate, base))
        else:
            left_out.append((number, reason))
    why = ""
    if left_out:
        numbers = ", ".join(str(number) for number, _ in left_out)
        many = len(left_out) > 1
        why = (f"round{'s' if many else ''} {numbers} left out, the instrument distorted "
               f"{'them' if many else 'it'} (round {left_out[0][0]}: {left_out[0][1]})")
        if len(kept) < 2:
            return Verdict(criterion, "inconclusive", None, None,
                           message=f"fewer than two rounds to judge: {why}")
    verdict = judge_rounds(criterion, [c.result for c, _ in kept if c.result],
                           [b.result for _, b in kept if b.result])
    return replace(verdict, message=f"{verdict.message}; {why}") if why else verdict


def combine(rounds: Sequence[ScenarioOutcome],
            judged: Mapping[int, Verdict] | None = None) -> ScenarioOutcome:
    """The rounds of one scenario as one outcome: an error in any round is the
    scenario's error (then no verdicts); otherwise criterion ``i`` is ``judged[i]`` when
    given (the relative ones), else its worst round. Timeline and series are the first
    round's; every round stays in ``rounds``."""
    first = rounds[0]
    results = [r.result for r in rounds if r.result is not None]
    outcome = ScenarioOutcome(first.name, first.description, first.file,
                              merge_rounds(results) if results else None,
                              timeline=first.timeline, series=first.series,
                              rounds=list(rounds))
    for number, each in enumerate(rounds, 1):
        if each.error is not None:
            outcome.error = f"round {number}: {each.error}"
            return outcome
    judged = judged or {}
    outcome.verdicts = [judged[i] if i in judged else worst_round(i, rounds)
                        for i in range(len(first.verdicts))]
    return outcome


__all__ = ["combine", "judge_pairs", "merge_rounds", "worst_round"]
