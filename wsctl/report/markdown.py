"""``summary.md``: the run as GitHub-flavoured Markdown, for people and for CI pages.

A verdict line, then per scenario a table ``| EP criterion | metric | threshold | measured |
result |`` (✅ PASS, ❌ FAIL, ⚠️ ERROR, ❔ INCONCLUSIVE: the word is always there for readers
without emoji), notes for what could not be judged or trusted, and the timeline as it
happened.
``append_step_summary`` adds it to ``$GITHUB_STEP_SUMMARY`` in GitHub Actions.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from wsctl.errors import InvalidInput
from wsctl.report._common import (
    VERDICT_WORD,
    rows,
    scenario_line,
    timeline_items,
    title,
    verdict_line,
    write_text,
)
from wsctl.results.criteria import Status
from wsctl.results.outcome import Outcome, RunReport, ScenarioOutcome

ICON: dict[Status, str] = {"pass": "✅", "fail": "❌", "error": "⚠️", "inconclusive": "❔"}
VERDICT_ICON: dict[Outcome, str] = {"passed": "✅", "failed": "❌", "error": "⚠️",
                                    "inconclusive": "❔"}
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"

# Characters that would start Markdown or HTML in user text (names, EP sentences).
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|!~])")


def escape(text: str) -> str:
    """User text as literal Markdown on one line: markup escaped, newlines as spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _code(text: str) -> str:
    """Inline code that survives a table cell (pipes escaped, backticks removed)."""
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _scenario(outcome: ScenarioOutcome) -> list[str]:
    lines = [f"### {VERDICT_ICON[outcome.verdict]} {escape(outcome.name)} — "
             f"{VERDICT_WORD[outcome.verdict]}", ""]
    if outcome.description:
        lines += [escape(outcome.description), ""]
    if outcome.error is not None:
        lines += [f"> ⚠️ **could not run:** {escape(outcome.error)}", ""]
    table = rows(outcome)
    if table:
        lines.append("| EP criterion | metric | threshold | measured | result |")
        lines.append("| --- | --- | --- | ---: | --- |")
        for r in table:
            lines.append(f"| {escape(r.ep) or '—'} | {_code(r.metric)} | "
                         f"{escape(r.threshold)} | {escape(r.measured)} | "
                         f"{ICON[r.status]} {r.word} |")
        lines.append("")
        notes = [r for r in table if r.message]
        for r in notes:
            lines.append(f"- {ICON[r.status]} {_code(r.metric)}: {escape(r.message)}")
        if notes:
            lines.append("")
    elif outcome.error is None:
        lines += ["No criteria: nothing was judged.", ""]
    items = timeline_items(outcome)
    if items:
        lines += ["**Timeline:** " + " · ".join(escape(i) for i in items), ""]
    lines += [f"*{escape(scenario_line(outcome))}*", ""]
    return lines


def markdown(report: RunReport) -> str:
    """The whole report as GitHub-flavoured Markdown."""
    lines = [f"## {VERDICT_ICON[report.verdict]} {escape(title(report))}: "
             f"{VERDICT_WORD[report.verdict]}", "",
             f"**{escape(verdict_line(report))}**", ""]
    if report.file:
        lines += [f"Scenarios from {_code(report.file)}, {escape(report.tool)}.", ""]
    for outcome in report.scenarios:
        lines += _scenario(outcome)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_markdown(report: RunReport, path: Path) -> None:
    """Write ``markdown(report)`` to ``path`` (InvalidInput when it cannot be written)."""
    write_text(path, markdown(report))


def append_step_summary(report: RunReport) -> bool:
    """Append ``markdown(report)`` to the file ``$GITHUB_STEP_SUMMARY`` names, when set.

    Returns whether it wrote; a path that cannot be written is InvalidInput naming it.
    """
    target = os.environ.get(STEP_SUMMARY)
    if not target:
        return False
    try:
        with open(target, "a", encoding="utf-8") as out:
            out.write(markdown(report) + "\n")
    except OSError as exc:
        raise InvalidInput(f"{target} (${STEP_SUMMARY}): {exc.strerror or exc}") from None
    return True
