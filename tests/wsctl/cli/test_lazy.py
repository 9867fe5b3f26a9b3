"""Each ``wsctl`` process imports only its own command: the other commands' modules and
the heavy libraries they use (httpx, the reference server, the chaos proxy, Locust, rich)
stay unloaded, and ``wsctl --help`` still lists every command."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

import pytest

import wsctl.cli
from wsctl.cli.main import COMMANDS

HEAVY = ("httpx", "server_stub", "wsctl.chaos", "locust", "rich", "uvicorn", "starlette",
         "yaml", "prometheus_client")

# Runs wsctl as the console script does; at exit, prints the modules it loaded.
_WSCTL = """
import atexit, json, sys
atexit.register(lambda: print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr))
from wsctl.cli.main import run
sys.argv[0] = "wsctl"
run()
"""


def _wsctl(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``wsctl ARGS`` in a fresh interpreter: the process and the modules it loaded."""
    proc = subprocess.run([sys.executable, "-c", _WSCTL, *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    last = proc.stderr.rstrip().splitlines()[-1]
    assert last.startswith("MODULES "), proc.stderr
    return proc, set(json.loads(last.removeprefix("MODULES ")))


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    """The modules that are one of ``prefixes`` or inside one of them."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("command", ["bench", "probe"])
def test_command_help_loads_only_its_module(command):
    """``wsctl bench --help`` / ``wsctl probe --help`` print the command's help having
    imported its module and no other command's module, nor any heavy library."""
    proc, modules = _wsctl(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"Usage: wsctl {command} [OPTIONS]" in proc.stdout
    assert f"wsctl.cli.{command}" in modules
    others = tuple(spec.module for name, spec in COMMANDS.items() if name != command)
    assert _loaded(modules, others) == []
    assert _loaded(modules, HEAVY) == []


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["bnch"]],
                         ids=lambda a: " ".join(a))
def test_top_level_loads_no_command(args):
    """``wsctl --help``, ``wsctl --version`` and a mistyped command import no command's
    module; the typo still gets its suggestion."""
    proc, modules = _wsctl(*args)
    assert _loaded(modules, tuple(spec.module for spec in COMMANDS.values())) == []
    assert _loaded(modules, HEAVY) == []
    if args == ["bnch"]:
        assert proc.returncode == 2
        assert "No such command 'bnch'. Did you mean 'bench'?" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


def test_help_lists_every_command_with_its_summary():
    """``wsctl --help`` lists every command module of wsctl/cli, in the table's order,
    each with its one-line summary; the loaded command carries the same summary."""
    from wsctl.cli.main import load_command

    modules = {f"wsctl.cli.{m.name}" for m in pkgutil.iter_modules(wsctl.cli.__path__)
               if not m.name.startswith("_") and m.name != "main"}
    assert {spec.module for spec in COMMANDS.values()} == modules
    proc, _ = _wsctl("--help")
    listing = proc.stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listing if line.strip()] == list(COMMANDS)
    for name, spec in COMMANDS.items():
        assert f"  {name:5}  {spec.summary}" in listing
        assert load_command(name).get_short_help_str() == spec.summary


def test_a_bench_worker_on_picows_does_not_load_websockets():
    """A bench worker process (its module, the engine, the default picows transport)
    leaves websockets' client unloaded: it is the websockets transport's alone."""
    code = ("import json, sys\n"
            "import wsctl.bench.worker, wsctl.bench.engine\n"
            "from wsctl.bench.transport import get_transport\n"
            "get_transport('picows')\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout))
    assert "wsctl.bench.transport_picows" in modules
    assert _loaded(modules, ("websockets", "wsctl.bench.transport_websockets")) == []
