"""The server's own command line, without wsctl's CLI: ``python -m server_stub [OPTIONS]``
takes every ``wsctl serve`` option and ``WSCTL_*`` variable (``config.OPTIONS``), and
``serve`` is what both commands do once the options are read."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from server_stub.config import OPTIONS, Option, config_from_options
from wsctl.errors import InvalidInput, WsctlError
from wsctl.units import parse_duration

PROG = "python -m server_stub"
DESCRIPTION = (
    "Run the reference server: resume protocol v1 at /ws/{stream}, /ws/health, /metrics, "
    "and a live dashboard at http://HOST:PORT/. The first line on stdout holds the URL "
    "(ws://HOST:PORT) and the dashboard's address. SIGTERM or Ctrl-C closes every "
    "connection with 1001 and a retry hint and exits 0. Exit 2 on bad input, 3 if the port "
    "is taken."
)
ISSUE_TOKEN_HELP = ("Print a token for this stream (needs --secret) and exit; "
                    "/metrics: a token for scraping /metrics.")
TTL_HELP = "Lifetime of --issue-token."
TTL_DEFAULT = "1h"


def serve(*, issue_token: str | None = None, ttl: str = TTL_DEFAULT,
          **options: Any) -> int:
    """Print a token for stream ``issue_token`` (with ``secret``), or run the server with
    ``options`` (``config.OPTIONS`` as typed) until SIGTERM; returns the exit status."""
    from server_stub.auth import METRICS_SCOPE
    from wsctl.protocol import STREAM_NAME

    if issue_token is not None:
        secret = options.get("secret")
        if not secret:
            raise InvalidInput("--issue-token needs --secret (or WSCTL_SECRET)")
        if not STREAM_NAME.fullmatch(issue_token) and issue_token != METRICS_SCOPE:
            raise InvalidInput(f"invalid stream name {issue_token!r}: use A-Z a-z 0-9 . _ -")
        from server_stub.auth import issue_token as make_token

        print(make_token(secret, issue_token, parse_duration(ttl, "--ttl")))
        return 0
    config = config_from_options(**options)
    from server_stub.logs import setup_logging
    from server_stub.main import run

    setup_logging(config.log_format, config.log_level)
    check_fd_room(config.max_connections)
    if config.workers > 1:
        from server_stub.workers import supervise

        return supervise(config)
    return run(config)


# File descriptors the server uses besides its connections: the listening socket, stdio,
# the event loop's own, log files, a scrape or two in flight.
FD_MARGIN = 64


def check_fd_room(max_connections: int) -> int:
    """Raise the soft file-descriptor limit to the hard one (every connection is one fd;
    the usual soft default, 1024, would cap the server far below ``--max-connections``),
    and warn when even that is too few for ``max_connections``. Returns the limit."""
    import logging

    from wsctl.fdlimit import raise_fd_limit

    limit = raise_fd_limit()
    if max_connections and limit < max_connections + FD_MARGIN:
        logging.getLogger("server_stub").warning(
            "file descriptor limit %d is below --max-connections %d: connections past about "
            "%d will fail to be accepted; raise it (ulimit -n, systemd LimitNOFILE=) or lower "
            "--max-connections", limit, max_connections, max(0, limit - FD_MARGIN))
    return limit


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors in one line, exit 2, as ``wsctl`` reports them."""
        self.exit(2, f"wsctl: error: {message} (see '{self.prog} --help')\n")


def _value(option: Option) -> Callable[[str], Any]:
    """Text -> the option's value, within its bounds (argparse reports a ValueError)."""

    def convert(text: str) -> Any:
        value: Any = {"int": int, "float": float}.get(option.kind, str)(text)
        if option.min is not None and value < option.min or (
                option.max is not None and value > option.max):
            bounds = f"{option.min if option.min is not None else ''}<=x" + (
                f"<={option.max}" if option.max is not None else "")
            raise argparse.ArgumentTypeError(f"{text} is not in the range {bounds}")
        return value

    convert.__name__ = option.kind  # argparse names it in "invalid int value"
    return convert


def parser() -> argparse.ArgumentParser:
    """Every ``wsctl serve`` option; a ``WSCTL_*`` variable stands in for a missing flag."""
    out = _Parser(prog=PROG, description=DESCRIPTION)
    for option in OPTIONS.values():
        env = os.environ.get(option.env)
        default: Any = option.default
        if env is not None and not option.repeat:  # argparse converts a text default
            default = env
        shown = "" if option.default is None else f"; default: {option.default}"
        out.add_argument(
            option.flag, type=_value(option), default=default, choices=option.choices or None,
            action="append" if option.repeat else "store",
            metavar=option.name.upper() if not option.choices else None,
            help=f"{option.help} [env {option.env}{shown}]".replace("%", "%%"),
        )
    out.add_argument("--issue-token", metavar="STREAM", help=ISSUE_TOKEN_HELP)
    out.add_argument("--ttl", default=TTL_DEFAULT, help=f"{TTL_HELP} [default: {TTL_DEFAULT}]")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m server_stub``: errors in one line with their exit code, no traceback."""
    args = vars(parser().parse_args(argv))
    for option in OPTIONS.values():  # a repeated flag replaces its variable's list
        if option.repeat and args[option.name] is None and option.env in os.environ:
            args[option.name] = os.environ[option.env].split()
    try:
        return serve(**args)
    except WsctlError as exc:
        print(f"wsctl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wsctl: interrupted", file=sys.stderr)
        return 130
