"""The ``wsctl`` typer app: global options and the registry of commands."""

from __future__ import annotations

from typing import Annotated

import typer

from wsctl import __version__
from wsctl.cli import bench, chaos, probe, serve
from wsctl.cli import run as run_command
from wsctl.cli._common import run_app, state

EXIT_CODES = """Exit codes: 0 success (all criteria passed); 1 a criterion failed;
2 usage or invalid input; 3 the run could not happen (unreachable, port taken)."""

app = typer.Typer(
    name="wsctl",
    help=f"Test and monitor WebSocket reliability.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help: it wraps help text but never cuts an option or variable name at
    # 80 columns (rich's tables do), and leaves "[default: ...]" in help text alone.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wsctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks for errors.", envvar="WSCTL_DEBUG")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Test and monitor WebSocket reliability."""
    state["debug"] = debug


# Commands register themselves here, one line each.
serve.register(app)
chaos.register(app)
probe.register(app)
bench.register(app)
run_command.register(app)


def run() -> None:
    """Console-script entry point."""
    run_app(app)
