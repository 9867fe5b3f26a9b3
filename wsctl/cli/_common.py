"""What every command shares: the ``--debug`` switch and error-to-exit-code mapping."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from wsctl.errors import WsctlError

F = TypeVar("F", bound=Callable[..., Any])

state = {"debug": False}


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
