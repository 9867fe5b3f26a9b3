"""``python -m server_stub [OPTIONS]`` is ``wsctl serve [OPTIONS]``, without loading the
other commands (it starts faster, which tests and benchmarks that spawn it notice)."""

import sys

import typer

from wsctl.cli import serve
from wsctl.cli._common import run_app

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
serve.register(app)

if __name__ == "__main__":
    run_app(app, sys.argv[1:], prog_name="python -m server_stub")
