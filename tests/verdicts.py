"""Verdicts of real runs in tests, on a machine that may be busy.

A test that runs a real scenario asserts what its code decides (which criteria pass or
fail). On a loaded machine the probes' loops run late and wsctl, rightly, judges timing
criteria INCONCLUSIVE instead of PASS. ``settled`` counts such a verdict as the PASS it
would have been only when its figure was measured and meets the bound; an INCONCLUSIVE
whose figure misses stays "inconclusive", so a wrong figure still fails the test.
"""

from __future__ import annotations

from typing import Any

from wsctl.results.criteria import Verdict, parse


def settled(verdict: Verdict | dict[str, Any]) -> str:
    """The verdict's status, with an INCONCLUSIVE whose figure holds read as "pass"."""
    if isinstance(verdict, Verdict):
        status, measured, threshold = verdict.status, verdict.measured, verdict.threshold
        criterion = verdict.criterion
    else:
        status, measured, threshold = verdict["status"], verdict["measured"], \
            verdict["threshold"]
        criterion = parse(verdict["metric"], verdict["expect"])
    if status == "inconclusive" and measured is not None and threshold is not None \
            and criterion.holds(measured, threshold):
        return "pass"
    return status
