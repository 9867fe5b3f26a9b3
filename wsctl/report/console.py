"""What a person sees in the terminal: the progress of a run and its final tables.

``print_report`` draws one table per scenario (criterion — the metric, and under it the
EP sentence it checks — | threshold | measured | result) and a verdict line; the result
word is always printed, colour only helps, and the table reads fully at 80 columns.
``RunProgress`` shows a run as it goes: a live rich display on a terminal, or
plain lines (one per scenario start and end, per action, and a status line every 5 s of
scenario time) for CI logs.
"""

from __future__ import annotations

from types import TracebackType

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from wsctl.report._common import (
    VERDICT_WORD,
    rows,
    scenario_line,
    seconds,
    timeline_items,
    verdict_line,
)
from wsctl.results.criteria import Status
from wsctl.results.outcome import Outcome, RunReport, ScenarioOutcome

STATUS_STYLE: dict[Status, str] = {"pass": "bold green", "fail": "bold red",
                                   "error": "bold yellow", "inconclusive": "bold magenta"}
VERDICT_STYLE: dict[Outcome, str] = {"passed": "bold green", "failed": "bold red",
                                     "error": "bold yellow", "inconclusive": "bold magenta"}
STATE_STYLE = {"open": "green", "connecting": "yellow", "backoff": "yellow", "lost": "red",
               "gave_up": "bold red", "closed": "dim"}
STATUS_EVERY = 5.0  # seconds of scenario time between plain status lines
WIDE = 100  # console columns from which a baseline threshold stays on one line


class Threshold:
    """A threshold on one line on a wide console, else broken before its parenthesis
    (``<= 0.8 × baseline`` / ``(41.2 ms)``), so a narrow table never splits a figure.
    ``broken`` gives another two-line form."""

    def __init__(self, text: str, broken: str | None = None) -> None:
        self.text = text
        self.broken = broken if broken is not None else text.replace(" (", "\n(")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        # rich shares out a narrow table's width without heeding minimums: ask for no
        # more than the broken form needs when the console is narrow.
        narrow = max(map(cell_len, self.broken.splitlines()))
        return Measurement(narrow, cell_len(self.text) if console.width >= WIDE else narrow)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text(self.text if cell_len(self.text) <= options.max_width else self.broken)


def scenario_table(outcome: ScenarioOutcome) -> Table:
    """One scenario's criteria as a rich table titled with its name and verdict."""
    title = Text.assemble((outcome.name, "bold"), " — ",
                          (VERDICT_WORD[outcome.verdict], VERDICT_STYLE[outcome.verdict]))
    table = Table(title=title, title_justify="left", expand=False)
    # Only the EP sentence (under its metric) and a relative threshold wrap, so at 80
    # columns every cell reads fully: no word per line, nothing cut with an ellipsis.
    table_rows = rows(outcome)
    table.add_column("criterion", overflow="fold",
                     min_width=max((cell_len(r.metric) for r in table_rows), default=0))
    table.add_column("threshold", overflow="fold")
    table.add_column("measured", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for r in table_rows:
        criterion: RenderableType = Text(r.metric, style="bold")
        if r.ep:
            criterion = Group(criterion, Padding(Text(r.ep, style="dim"), (0, 0, 0, 2)))
        # A ratio's interval goes under it on a narrow console: "0.912×" / "0.851–0.977".
        measured = Threshold(f"{r.ratio} {r.interval}", f"{r.ratio}\n{r.interval}") \
            if r.interval else Text(r.measured)
        table.add_row(criterion, Threshold(r.threshold), measured,
                      Text(r.word, style=STATUS_STYLE[r.status]))
    return table


def scenario_view(outcome: ScenarioOutcome) -> Group:
    """The table, notes on what failed, the timeline and the scenario's verdict."""
    parts: list[RenderableType] = []
    if outcome.verdicts:
        parts.append(scenario_table(outcome))
    else:
        parts.append(Text.assemble((outcome.name, "bold"), " — ",
                                   (VERDICT_WORD[outcome.verdict],
                                    VERDICT_STYLE[outcome.verdict])))
    if outcome.error is not None:
        parts.append(Text(f"could not run: {outcome.error}", style="yellow"))
    for r in rows(outcome):
        if r.message:
            parts.append(Text(f"{r.word} {r.metric}: {r.message}",
                              style=STATUS_STYLE[r.status].replace("bold ", "")))
    items = timeline_items(outcome)
    if items:
        parts.append(Text("timeline: " + " · ".join(items), style="dim"))
    return Group(*parts)


def print_report(report: RunReport, console: Console) -> None:
    """Print every scenario's table and timeline, then the run's verdict line."""
    for outcome in report.scenarios:
        console.print(scenario_view(outcome))
        console.print()
    console.print(Text(verdict_line(report), style=VERDICT_STYLE[report.verdict]))


class RunProgress:
    """Progress of a run while it happens; a context manager the runner feeds.

    ``live=True`` draws a rich Live display (scenario i/N, a bar of elapsed/duration,
    probe states, key counters, last action) and prints each finished scenario above it;
    ``live=False`` prints plain lines, for logs that are read later.
    """

    def __init__(self, console: Console, live: bool) -> None:
        self.console = console
        self.live = live
        self._live: Live | None = None
        self._name = ""
        self._index = 0
        self._total = 0
        self._duration = 0.0
        self._elapsed = 0.0
        self._states: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        self._last_action = ""
        self._next_status = STATUS_EVERY

    def __enter__(self) -> RunProgress:
        if self.live:
            self._live = Live(self._view(), console=self.console, auto_refresh=False,
                              transient=True, redirect_stdout=False, redirect_stderr=False)
            self._live.start(refresh=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- what the runner calls ---------------------------------------------------------

    def start_scenario(self, name: str, index: int, total: int, duration: float) -> None:
        """A scenario starts: ``index`` counts from 1 to ``total``; ``duration`` seconds."""
        self._name, self._index, self._total, self._duration = name, index, total, duration
        self._elapsed = 0.0
        self._states, self._counters, self._last_action = {}, {}, ""
        self._next_status = STATUS_EVERY
        self._line(f"{name}: started ({seconds(duration)})")
        self._refresh()

    def update(self, elapsed: float, states: dict[str, int], counters: dict[str, int]) -> None:
        """Scenario time ``elapsed`` seconds; probes by state; counters so far."""
        self._elapsed = elapsed
        self._states, self._counters = dict(states), dict(counters)
        if not self.live and elapsed >= self._next_status:
            self._line(f"t={elapsed:.1f}s {self._status_text()}", indent=True)
            self._next_status = (elapsed // STATUS_EVERY + 1) * STATUS_EVERY
        self._refresh()

    def action(self, text: str) -> None:
        """A timeline action just happened (text as people read it: ``server.kill``)."""
        self._last_action = f"t={self._elapsed:.1f}s {text}"
        self._line(self._last_action, indent=True)
        self._refresh()

    def end_scenario(self, outcome: ScenarioOutcome) -> None:
        """A scenario finished (or could not run): print its verdict line."""
        took = outcome.result.duration if outcome.result is not None else self._elapsed
        text = f"{outcome.name}: {scenario_line(outcome)} ({seconds(took)})"
        if self._live is not None:
            prefix = f"[{self._index}/{self._total}] " if self._total else ""
            self._live.console.print(
                Text(prefix + text, style=VERDICT_STYLE[outcome.verdict]),
                highlight=False)
        else:
            self._line(text)
        self._refresh()

    # -- drawing -----------------------------------------------------------------------

    def _prefix(self) -> str:
        return f"[{self._index}/{self._total}]" if self._total else "[-]"

    def _line(self, text: str, indent: bool = False) -> None:
        if self.live:
            return
        self.console.print(f"{self._prefix()}{'   ' if indent else ' '}{escape(text)}",
                           highlight=False, soft_wrap=True)

    def _status_text(self) -> str:
        states = " ".join(f"{k}={v}" for k, v in self._states.items() if v)
        counters = " ".join(f"{k}={v}" for k, v in self._counters.items())
        return " ".join(p for p in (states or "no probes", counters) if p)

    def _view(self) -> RenderableType:
        if not self._name:
            return Text("wsctl run: starting…", style="dim")
        head = Text.assemble((f"scenario {self._index}/{self._total} ", "dim"),
                             (self._name, "bold"))
        bar = Table.grid(padding=(0, 1))
        bar.add_column(width=40)
        bar.add_column()
        total = max(self._duration, 1e-9)
        bar.add_row(ProgressBar(total=total, completed=min(self._elapsed, total), width=40),
                    Text(f"{self._elapsed:5.1f} s / {seconds(self._duration)}"))
        states = Text("probes: ")
        shown = [(k, v) for k, v in self._states.items() if v]
        for i, (state, n) in enumerate(shown):
            if i:
                states.append("  ")
            states.append(f"{state}={n}", style=STATE_STYLE.get(state, ""))
        if not shown:
            states.append("none yet", style="dim")
        counters = Text("  ".join(f"{k}={v}" for k, v in self._counters.items()) or " ")
        action = Text(f"last action: {self._last_action or '—'}", style="cyan")
        return Group(head, bar, states, counters, action)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._view(), refresh=True)
