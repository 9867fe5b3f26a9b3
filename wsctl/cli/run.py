"""``wsctl run [FILE ...]``: run scenario files and judge them against their criteria."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsctl.cli._common import env_options, load_baseline, reports_errors, state
from wsctl.errors import InvalidInput

if TYPE_CHECKING:
    from wsctl.results.outcome import RunReport
    from wsctl.scenario.model import Suite
    from wsctl.scenario.runner import Runner

HELP = (
    "Run scenario files: start the server (the reference server, or your own service's "
    "command; or use the scenario's url), the chaos proxy and the probes, carry out each "
    "timeline of faults, and judge the criteria.\n\n"
    "--server-command with --server-url (and --server-ready) replaces the server of every "
    "selected scenario with your service, which wsctl starts, kills, pauses and restarts "
    "({port} is a free port wsctl picks); --server-url alone points every scenario at a "
    "server wsctl does not run. Your service's output goes to "
    "REPORT_DIR/<scenario>.service.log with --report-dir.\n\n"
    "With no FILE, runs the bundled EP-0001 suite, scenarios/ep-0001.yaml. Every file is "
    "validated before anything starts. Reports: --json, --junit, --markdown, --html, or "
    "--report-dir for all four; the Markdown summary is also appended to "
    "$GITHUB_STEP_SUMMARY when that is set.\n\n"
    "Exit codes: 0 every criterion passed; 1 a criterion failed (or could not be judged); "
    "2 usage or invalid input (bad file, unknown scenario, missing baseline, unwritable "
    "report path) - nothing was started; 3 a scenario could not run (server would not "
    "start, target unreachable, port taken, a timeline action failed); 4 a criterion was "
    "INCONCLUSIVE (the figures could not be trusted; the report says why) and none "
    "failed; 130 interrupted (Ctrl-C): what finished is reported, everything started is "
    "stopped."
)


def bundled_suite() -> Path:
    """The default suite: ``scenarios/ep-0001.yaml`` beside the ``wsctl`` package."""
    import wsctl

    return Path(wsctl.__file__).resolve().parents[1] / "scenarios" / "ep-0001.yaml"


_opt = env_options("WSCTL_RUN_")




async def _run(runner: Runner, suites: list[Suite], only: list[str] | None) -> RunReport:
    """Run with Ctrl-C (and SIGTERM) ending the run cleanly; a second Ctrl-C is abrupt."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def interrupted(sig: signal.Signals) -> None:
        runner.interrupt(sig)
        for each in list(installed):
            loop.remove_signal_handler(each)
            installed.remove(each)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, interrupted, sig)
            installed.append(sig)
    try:
        return await runner.run(suites, only)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@reports_errors
def run(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Scenario or suite files (YAML). Default: the bundled scenarios/ep-0001.yaml.",
        metavar="FILE...", show_default=False)] = None,
    json_out: Annotated[Path | None, _opt(
        "Write the run report (JSON, versioned; usable as a later --baseline) here.",
        "JSON", "--json", show_default=False)] = None,
    junit: Annotated[Path | None, _opt(
        "Write JUnit XML here: one testcase per criterion.", "JUNIT",
        show_default=False)] = None,
    markdown: Annotated[Path | None, _opt("Write the Markdown summary here.", "MARKDOWN",
                                          show_default=False)] = None,
    html: Annotated[Path | None, _opt(
        "Write one self-contained HTML page with charts here (opens offline).", "HTML",
        show_default=False)] = None,
    report_dir: Annotated[Path | None, _opt(
        "Write all four reports into this directory (report.json, junit.xml, summary.md, "
        "report.html); created if missing.", "REPORT_DIR", show_default=False)] = None,
    baseline: Annotated[Path | None, _opt(
        "Earlier results for 'OP k * baseline' criteria: a report.json of wsctl run (each "
        "scenario takes its 'baseline:' scenario's result, else its own) or any wsctl "
        "--json result (for every scenario).",
        "BASELINE", show_default=False)] = None,
    scenario: Annotated[list[str] | None, _opt(
        "Run only this scenario (repeat for several); --list shows the names.", None,
        "--scenario", "-s", show_default=False)] = None,
    list_only: Annotated[bool, _opt("List the scenarios (name, duration, description) and "
                                    "exit; with no FILE, of every bundled suite.", None,
                                    "--list")] = False,
    server_command: Annotated[str | None, _opt(
        "Run your service for every selected scenario: the command that starts it, split "
        "as a shell would (no shell runs it); {port} is a free port wsctl picks. Needs "
        "--server-url.", "SERVER_COMMAND", "--server-command", show_default=False)] = None,
    server_url: Annotated[str | None, _opt(
        "Where the probes connect (e.g. ws://127.0.0.1:{port}/ws/{stream}). Your "
        "service's URL when --server-command is given; alone, a server wsctl does not "
        "run (server.* actions are then refused).", "SERVER_URL", "--server-url",
        show_default=False)] = None,
    server_ready: Annotated[str | None, _opt(
        "When your service is ready: http://... (answers 2xx, e.g. its /ws/health), "
        "tcp://HOST:PORT, or log:REGEX (a line of its output). Default: its url accepts "
        "TCP. Needs --server-command.", "SERVER_READY", "--server-ready",
        show_default=False)] = None,
    quiet: Annotated[bool, _opt("No progress and no tables: one verdict line (errors still "
                                "go to stderr).", "QUIET", "--quiet", "-q")] = False,
) -> None:
    from wsctl.scenario.model import load_suite
    from wsctl.scenario.runner import check_baselines, select

    if not files:
        default = bundled_suite()
        if not default.is_file():
            raise InvalidInput(f"no FILE given and the bundled suite {default} is missing; "
                               "pass a scenario file: wsctl run FILE.yaml")
        files = [default]
        if list_only:  # every bundled suite, the default first (ep-0001-durable.yaml...)
            files += sorted(p for p in default.parent.glob("*.yaml") if p != default)
    suites = [load_suite(path) for path in files]  # every file checked before anything runs
    if list_only:
        _list(suites)
        return
    selected = select(suites, scenario)
    if server_command is not None or server_url is not None or server_ready is not None:
        _replace_server(selected, server_command, server_url, server_ready)
    base = load_baseline(baseline) if baseline is not None else None
    check_baselines(selected, base)
    from wsctl.report import check_outputs, write_outputs

    outputs = {"json": json_out, "junit": junit, "markdown": markdown, "html": html}
    check_outputs(outputs, report_dir)
    _ensure_fds(selected)

    from rich.console import Console

    from wsctl.probe import ioclock
    from wsctl.report.console import RunProgress, print_report
    from wsctl.scenario.runner import Runner
    from wsctl.scenario.service import kill_all

    if not state["debug"]:
        # Components log their own failures (a proxy fault that broke, say) with
        # tracebacks; without --debug they must not reach the person running this.
        logging.getLogger("wsctl").addHandler(logging.NullHandler())
    console = Console()
    progress = None if quiet else RunProgress(console, live=console.is_terminal)
    runner = Runner(baseline=base, progress=progress, log_dir=report_dir)
    try:
        if progress is not None:
            with progress:
                report = ioclock.run(_run(runner, suites, scenario))
        else:
            report = ioclock.run(_run(runner, suites, scenario))
    finally:
        kill_all()  # whatever happened, no server (embedded or yours) outlives the command
    for outcome in report.scenarios:
        if outcome.error is not None and not runner.interrupted:
            typer.echo(f"wsctl: error: scenario {outcome.name}: {outcome.error}", err=True)
    if quiet:
        from wsctl.report._common import verdict_line

        typer.echo(verdict_line(report))
    else:
        print_report(report, console)
    write_outputs(report, outputs, report_dir)
    if runner.interrupted:
        sig = runner.received_signal or signal.SIGINT
        done = sum(1 for s in report.scenarios if s.error is None)
        typer.echo(f"wsctl run: interrupted; {done} of {len(selected)} scenarios finished",
                   err=True)
        raise typer.Exit(128 + int(sig))
    raise typer.Exit(report.exit_code)


def _replace_server(selected: list[Any], command: str | None, url: str | None,
                    ready: str | None) -> None:
    """The server of every selected scenario replaced by the flags' one; InvalidInput
    (exit 2) for a bad combination, or a scenario whose ``server.*`` actions would then
    have no process to act on."""
    from pydantic import ValidationError

    from wsctl.scenario.actions import ACTIONS
    from wsctl.scenario.model import ServerSpec, server_action_refused

    if url is None:
        raise InvalidInput("--server-command and --server-ready need --server-url: where "
                           "the probes connect, e.g. ws://127.0.0.1:{port}/ws/{stream}")
    if ready is not None and command is None:
        raise InvalidInput("--server-ready needs --server-command: wsctl only waits for a "
                           "server it starts")
    given = {"url": url, **({"command": command} if command is not None else {}),
             **({"ready": ready} if ready is not None else {})}
    try:
        spec = ServerSpec.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = (error.get("ctx") or {}).get("error")
        field = getattr(cause, "loc", error["loc"])[-1] if error["loc"] or cause else "url"
        message = getattr(cause, "message", None) or error["msg"]
        raise InvalidInput(f"--server-{str(field).replace('_', '-')}: {message}") from None
    for suite, each in selected:
        for step in each.timeline:
            if ACTIONS[step.do].needs == "server" and not spec.owned:
                raise InvalidInput(f"{suite.file}:{step.line}: scenario {each.name}: with "
                                   f"--server-url alone, {server_action_refused(step.do)}")
        each.server = spec


def _list(suites: list[Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    for suite in suites:
        console.print(f"[bold]{escape(suite.file)}[/bold]: {escape(suite.name)}"
                      + (f" - {escape(suite.description)}" if suite.description else ""),
                      soft_wrap=True)
        for scenario in suite.scenarios:
            console.print(f"  {escape(scenario.name):32} {scenario.duration:>6g}s  "
                          f"{escape(scenario.description)}", soft_wrap=True)


def _ensure_fds(selected: list[Any]) -> None:
    """Every probe holds a socket (three with the proxy in the same process): raise the
    soft limit as far as needed, or say which scenario needs more than is allowed."""
    from wsctl.fdlimit import raise_fd_limit

    needed, name = 0, ""
    for _, scenario in selected:
        probes = scenario.probes.count + sum(step.count or 0 for step in scenario.timeline
                                             if step.do == "probes.add")
        fds = probes * (3 if scenario.proxy else 1) + 64
        if fds > needed:
            needed, name = fds, scenario.name
    raise_fd_limit(needed, f"scenario {name}", "use fewer probes")


def register(app: typer.Typer) -> None:
    app.command("run", help=HELP)(run)
