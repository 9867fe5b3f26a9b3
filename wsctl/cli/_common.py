"""What every command shares: options with their ``WSCTL_*`` variables, the ``--debug``
switch, error-to-exit-code mapping and ``--baseline`` files."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from wsctl.errors import InvalidInput, WsctlError

F = TypeVar("F", bound=Callable[..., Any])

state = {"debug": False}


def env_options(prefix: str) -> Callable[..., Any]:
    """The option maker of one command: ``opt(help, ENV, *names, **kw)`` is a
    ``typer.Option`` with that help and the variable ``prefix + ENV`` (none when ENV is
    None, for options where a variable makes no sense)."""

    def opt(help: str, env: str | None, *names: str, **kw: Any) -> Any:
        if env is not None:
            kw["envvar"] = prefix + env
        return typer.Option(*names, help=help, **kw)

    return opt


def reports_errors(func: F) -> F:
    """Turn a ``WsctlError`` into one line on stderr and its exit code (traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WsctlError as exc:
            if state["debug"]:
                raise
            print(f"wsctl: error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("wsctl: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def fail_usage(message: str) -> typer.Exit:
    """Report bad input in one line and return the exit (code 2) for the caller to raise."""
    print(f"wsctl: error: {message}", file=sys.stderr)
    return typer.Exit(2)


def run_app(app: typer.Typer, args: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a typer app as a program: usage errors in one line (exit 2), and no traceback
    reaches a person without ``--debug``."""
    try:
        code = app(args, prog_name=prog_name, standalone_mode=False)
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's errors
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            if message := exc.format_message():  # empty when help was shown instead
                print(f"wsctl: error: {message}{hint}", file=sys.stderr)
            sys.exit(exc.exit_code)
        if state["debug"] or "--debug" in sys.argv:
            raise
        print(f"wsctl: internal error: {type(exc).__name__}: {exc} (rerun with --debug "
              "for the traceback)", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def load_baseline(path: Path) -> Any:
    """``--baseline FILE``: the results a run report holds (by scenario name) or any one
    wsctl ``--json`` result; InvalidInput (exit 2) naming the file otherwise."""
    from wsctl.results.outcome import baseline_results

    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"--baseline {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(f"--baseline {path}: cannot read: {reason}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--baseline {path}: not JSON ({exc.msg} at line "
                           f"{exc.lineno}); give a report.json or a --json result") from None
    return baseline_results(obj, f"--baseline {path}")
