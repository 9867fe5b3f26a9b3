"""The ``wsctl`` typer app: global options and the registry of commands.

Each command's module is imported only when that command runs or shows its help, so a
process pays for its own command alone (``wsctl bench`` never loads the chaos proxy's
HTTP client or the reference server). ``wsctl --help`` lists every command from
``COMMANDS`` without importing any of them (click's documented lazy-group pattern)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any, NamedTuple

import typer
import typer.main
from typer import _click
from typer.core import TyperGroup

from wsctl import __version__
from wsctl.cli._common import run_app, state

EXIT_CODES = """Exit codes: 0 success (all criteria passed); 1 a criterion failed;
2 usage or invalid input; 3 the run could not happen (unreachable, port taken)."""


class Command(NamedTuple):
    module: str  # defines ``register(app)``, which adds the command to a typer app
    summary: str  # the one line ``wsctl --help`` shows for it


# Commands, in the order ``wsctl --help`` lists them: one line each.
COMMANDS = {
    "serve": Command("wsctl.cli.serve", "Run the reference server (protocol v1, health, "
                                        "metrics)."),
    "probe": Command("wsctl.cli.probe", "Reconnecting probe clients that measure what a "
                                        "user feels."),
    "bench": Command("wsctl.cli.bench", "Open-model connection and message load, with gates."),
    "run": Command("wsctl.cli.run", "Run scenario files and judge them against their "
                                    "criteria."),
    "chaos": Command("wsctl.cli.chaos", "Fault-injection proxy: Toxiproxy's API and "
                                        "WebSocket faults."),
}

# What the app and each command's holder app share (a command is built the way it would
# be as a direct subcommand of ``app``).
_SETTINGS: dict[str, Any] = {
    "pretty_exceptions_enable": False,
    "add_completion": False,
    # Plain click help: it wraps help text but never cuts an option or variable name at
    # 80 columns (rich's tables do), and leaves "[default: ...]" in help text alone.
    "rich_markup_mode": None,
}


def load_command(name: str) -> _click.Command:
    """The click command ``name`` of ``COMMANDS``, its module imported now."""
    spec = COMMANDS[name]
    holder = typer.Typer(**_SETTINGS)
    importlib.import_module(spec.module).register(holder)
    command = typer.main.get_group(holder).commands[name]
    command.short_help = spec.summary
    return command


class _LazyCommands(MutableMapping[str, _click.Command]):
    """The group's commands by name: every name of ``COMMANDS`` is there from the start,
    and each command is built on its first look-up."""

    def __init__(self) -> None:
        self._built: dict[str, _click.Command] = {}

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = load_command(name)
        return self._built[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self._built]))

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._built))

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self._built


class LazyGroup(TyperGroup):
    """A typer group whose commands are imported when used; its help lists them from
    ``COMMANDS``."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.commands = _LazyCommands()

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, spec.summary) for name, spec in COMMANDS.items()])


app = typer.Typer(
    name="wsctl",
    cls=LazyGroup,
    help=f"Test and monitor WebSocket reliability.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    **_SETTINGS,
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


def run() -> None:
    """Console-script entry point."""
    run_app(app)
