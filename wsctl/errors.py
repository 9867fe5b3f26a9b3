"""One error tree for wsctl; lower-layer errors are translated where they enter.

    WsctlError                 base; ``exit_code`` maps to the CLI's exit status
    ├── InvalidInput (2)       bad flags, URLs, files: nothing was started or changed
    │   ├── NotFound           a named proxy, toxic, schedule or connection does not exist
    │   ├── Conflict           a name is already taken (proxy, toxic)
    │   └── ProxyLoop          a proxy's upstream leads back to its own listen address
    ├── CriteriaFailed (1)     a run happened and at least one criterion failed
    └── RunFailed (3)          the run could not happen or stopped
        ├── Unreachable        target refused, DNS, TLS or handshake status
        │   └── ConnectError   one connection attempt failed: kind, message, retry hint
        ├── PortInUse          a listen address is taken
        └── ActionFailed       a scenario's timeline action could not be carried out

Messages are one line a person can act on; tracebacks are only shown with ``--debug``.
A failed connection attempt, from any wsctl client, becomes a ``ConnectError`` through
``classify_connect_error`` (the kinds, ``CONNECT_KINDS``, are documented in docs/metrics.md).
"""

from __future__ import annotations

import math


class WsctlError(Exception):
    """Base of every error wsctl reports to a person."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(WsctlError):
    """Input is wrong (flag, URL, file); nothing started or changed. Exit code 2."""

    exit_code = 2


class CriteriaFailed(WsctlError):
    """The run completed and at least one criterion failed. Exit code 1."""

    exit_code = 1


class RunFailed(WsctlError):
    """The run could not happen or could not go on. Exit code 3."""

    exit_code = 3


class Unreachable(RunFailed):
    """A target could not be reached: refused, DNS, TLS or a handshake status."""


class PortInUse(RunFailed):
    """A listen address is already taken."""


# -- refusals of the chaos core (wsctl/chaos/api.py answers them 404 and 409) ---------


class NotFound(InvalidInput):
    """A named thing (proxy, toxic, schedule, connection) does not exist. Exit code 2."""


class Conflict(InvalidInput):
    """A name is already taken (a proxy, a toxic); nothing was changed. Exit code 2."""


class ProxyLoop(InvalidInput):
    """A proxy's upstream is its own listen address, directly or through other proxies of
    the same chaos server: every connection would open another until no fd is left.
    Nothing was changed. Exit code 2 (HTTP 400, ``kind: proxy_loop``)."""


# --- connect failures: one classifier for probes and bench ---------------------------------
#
# Every client in wsctl (the probe's connector, the bench transports, the Locust user) turns
# a failed connection attempt into a ConnectError through ``classify_connect_error``; its
# ``kind`` is what the ``errors.<kind>`` counters count, and ``costs_server`` is what a
# backoff policy may ask (issue 13: retry quickly what cost the server nothing).

CONNECT_KINDS: dict[str, str] = {
    "refused": "nothing listening: the kernel refused the TCP connect (RST to the SYN)",
    "dns": "the host name did not resolve",
    "fds": "this process ran out of file descriptors (EMFILE): the client's limit",
    "timeout": "no open WebSocket before the connect timeout (SYN or upgrade unanswered)",
    "reset": "TCP accepted, then reset (RST) before the WebSocket handshake finished",
    "dropped": "TCP accepted, then closed (EOF) before the handshake finished "
               "(accept-then-drop)",
    "tls": "the TLS handshake or certificate verification failed",
    "protocol": "the server's answer was not a WebSocket upgrade (bad HTTP, bad URL)",
    "other": "anything else",
}
"""The fixed kinds of :class:`ConnectError`, with what each means. Besides these, a server
answering the upgrade with an HTTP status is kind ``status_<code>`` (``status_503``)."""

STATUS_KIND_PREFIX = "status_"

FREE_KINDS = frozenset({"refused", "dns", "fds"})
"""Kinds that cost the server under test no work: the attempt never reached a process
that accepted it. Every other kind (timeouts, resets, accept-then-drop, TLS, HTTP statuses,
bad handshakes, and ``other``, which is not known to be free) may have."""


def connect_kind_costs_server(kind: str) -> bool:
    """Whether a failure of ``kind`` may have cost the server work (see ``FREE_KINDS``)."""
    return kind not in FREE_KINDS


class ConnectError(Unreachable):
    """One connection attempt failed. ``kind`` names how (a key of ``CONNECT_KINDS`` or
    ``status_<code>``), ``message`` says it to a person, ``retry_after`` is the server's
    hint in seconds (HTTP ``Retry-After``) or None."""

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after

    @property
    def status(self) -> int | None:
        """The HTTP status the server answered the upgrade with, if that was the failure."""
        if self.kind.startswith(STATUS_KIND_PREFIX):
            return int(self.kind[len(STATUS_KIND_PREFIX):])
        return None

    @property
    def costs_server(self) -> bool:
        """Whether this attempt may have cost the server work (False: refused, DNS, fds)."""
        return connect_kind_costs_server(self.kind)

    def __repr__(self) -> str:
        hint = f", retry_after={self.retry_after!r}" if self.retry_after is not None else ""
        return f"ConnectError({self.kind!r}, {self.message!r}{hint})"


def parse_retry_after(value: str | None) -> float | None:
    """HTTP ``Retry-After`` in delta-seconds -> seconds (>= 0); None when absent or not a
    number (an HTTP-date is not used: it would need the server's clock)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def status_connect_error(status: int, retry_after: str | None = None) -> ConnectError:
    """The server answered the upgrade with HTTP ``status`` (and maybe ``Retry-After``)."""
    hint = parse_retry_after(retry_after)
    suffix = f", retry after {hint:g}s" if hint is not None else ""
    return ConnectError(f"{STATUS_KIND_PREFIX}{status}",
                        f"handshake rejected: HTTP {status}{suffix}", retry_after=hint)


def classify_connect_error(exc: BaseException, timeout: float | None = None) -> ConnectError:
    """Translate whatever a connect raised (OS, ssl, websockets) into a ConnectError.

    Pure: looks only at the exception (and its causes). ``timeout`` is only for wording.
    Libraries with their own exceptions map them first (``status_connect_error`` for a
    status) and hand the rest here.
    """
    import socket
    import ssl

    from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI

    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, InvalidStatus):
        response = exc.response
        return status_connect_error(response.status_code, response.headers.get("Retry-After"))
    if isinstance(exc, InvalidMessage):
        # websockets wraps a connection that ended before the HTTP response in InvalidMessage.
        cause = exc.__cause__
        if isinstance(cause, ConnectionResetError | EOFError):
            return classify_connect_error(cause, timeout)
        return ConnectError("protocol", f"WebSocket handshake failed: {exc}")
    if isinstance(exc, TimeoutError):
        after = f" after {timeout:g}s" if timeout is not None else ""
        return ConnectError("timeout", f"timed out{after} opening the connection")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError("refused", "connection refused")
    if isinstance(exc, socket.gaierror):
        return ConnectError("dns", f"DNS lookup failed: {exc.strerror or exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectError("tls", "TLS certificate verification failed: "
                                   f"{getattr(exc, 'verify_message', None) or exc}")
    if isinstance(exc, ssl.SSLError):
        return ConnectError("tls", f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}")
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return ConnectError("reset", "connection reset during the WebSocket handshake")
    if isinstance(exc, EOFError):
        return ConnectError("dropped", "connection closed during the WebSocket handshake")
    if isinstance(exc, InvalidHandshake | InvalidURI):
        return ConnectError("protocol", f"WebSocket handshake failed: {exc}")
    if isinstance(exc, OSError):
        if exc.errno == 24:  # EMFILE
            return ConnectError("fds", f"out of file descriptors: {exc.strerror or exc}")
        return ConnectError("other", exc.strerror or str(exc) or type(exc).__name__)
    return ConnectError("other", f"{type(exc).__name__}: {exc}")


class ActionFailed(RunFailed):
    """A timeline action could not be carried out (e.g. killing a server that is not
    running); the scenario stops there and is an error."""
