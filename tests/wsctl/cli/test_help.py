"""Every ``--help`` reads fully in an 80-column terminal: no option, variable or choice
name cut, no line past the edge, no command summary trailing off."""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from wsctl.cli.main import app

WIDTH = 80


def _commands(command: Any, path: tuple[str, ...] = ()):
    """(path, command) for ``wsctl`` and every command and subcommand under it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():  # a group's commands
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _names(command: Any) -> set[str]:
    """Every name a person types for this command: flags, WSCTL_* variables, choices."""
    names: set[str] = set()
    for param in command.params:
        names.update(param.opts)
        names.update(getattr(param, "secondary_opts", []))
        envvars = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
        names.update(e for e in envvars if e)
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            names.update(str(member.value) for member in annotation)
    return names


def test_every_command_is_covered():
    """The walk finds the commands the help must cover (a new one is covered by itself)."""
    assert {("serve",), ("probe",), ("bench",), ("run",), ("chaos",), ("chaos", "serve"),
            ("chaos", "proxy", "add"), ("chaos", "toxic", "add")} <= set(COMMANDS)


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(("wsctl", *p)))
def test_help_reads_fully_at_80_columns(path):
    """At COLUMNS=80 every flag, WSCTL_* variable and choice of the command appears whole
    (never cut with '…' or split across lines), no line is wider than 80 columns, and
    command summaries are not cut short with '...'."""
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)},
                                terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    text = result.output
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    assert "…" not in text
    assert not [line for line in lines if line.endswith("...") and
                not line.startswith("Usage:")]
    rejoined = re.sub(r"(?<=\w-)\n\s+", "", text)  # undo every split after a hyphen
    for name in _names(COMMANDS[path]):
        whole = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
        assert whole.search(text), f"{name} is not shown whole"
        assert len(whole.findall(rejoined)) == len(whole.findall(text)), (
            f"{name} is split across lines")
