"""The one connect-failure classifier (wsctl.errors): kind, message, retry hint, cost."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus, InvalidURI
from websockets.http11 import Response

from wsctl.errors import (
    CONNECT_KINDS,
    FREE_KINDS,
    ConnectError,
    Unreachable,
    classify_connect_error,
    parse_retry_after,
    status_connect_error,
)


def caused(outer: BaseException, cause: BaseException) -> BaseException:
    """``outer`` raised ``from cause``, as websockets raises it."""
    outer.__cause__ = cause
    return outer


def status(code: int, *headers: tuple[str, str]) -> InvalidStatus:
    return InvalidStatus(Response(code, "Reason", Headers(list(headers)), b""))


CASES = [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused",
     "connection refused"),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "dns",
     "DNS lookup failed: Name or service not known"),
    (OSError(errno.EMFILE, "Too many open files"), "fds",
     "out of file descriptors: Too many open files"),
    (TimeoutError(), "timeout", "timed out after 2.5s opening the connection"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "reset", "connection reset"),
    (caused(InvalidMessage("did not receive a valid HTTP response"),
            ConnectionResetError()), "reset", "connection reset"),
    (EOFError("stream ends"), "dropped", "connection closed during the WebSocket handshake"),
    (caused(InvalidMessage("did not receive a valid HTTP response"),
            EOFError("connection closed while reading HTTP status line")), "dropped",
     "connection closed during the WebSocket handshake"),
    (ssl.SSLError(1, "[SSL] wrong version number"), "tls", "TLS handshake failed"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls",
     "TLS certificate verification failed"),
    (caused(InvalidMessage("did not receive a valid HTTP response"),
            ValueError("invalid HTTP status line: SSH-2.0")), "protocol",
     "WebSocket handshake failed: did not receive a valid HTTP response"),
    (InvalidHandshake("missing Sec-WebSocket-Accept"), "protocol",
     "WebSocket handshake failed: missing Sec-WebSocket-Accept"),
    (InvalidURI("http://x/", "scheme isn't ws or wss"), "protocol",
     "WebSocket handshake failed"),
    (status(401), "status_401", "handshake rejected: HTTP 401"),
    (status(403), "status_403", "handshake rejected: HTTP 403"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "other", "No route to host"),
    (ValueError("odd"), "other", "ValueError: odd"),
]


@pytest.mark.parametrize("exc, kind, words", CASES)
def test_each_failure_gets_its_kind_and_a_line_for_people(
    exc: BaseException, kind: str, words: str
) -> None:
    """Every kind of the set is recognised from what the libraries really raise."""
    error = classify_connect_error(exc, 2.5)
    assert error.kind == kind
    assert error.message.startswith(words)
    assert str(error) == error.message
    assert error.retry_after is None


def test_kinds_cover_the_documented_set() -> None:
    """The cases above reach every fixed kind (a new kind needs a case), and no other."""
    assert set(CONNECT_KINDS) == {"refused", "dns", "fds", "timeout", "reset", "dropped",
                                  "tls", "protocol", "other"}
    assert {kind for _, kind, _ in CASES if not kind.startswith("status_")} == \
        set(CONNECT_KINDS)


def test_http_503_carries_its_retry_after_as_the_hint() -> None:
    """HTTP 503 with Retry-After: 7 is kind status_503, status 503, hint 7 s."""
    error = classify_connect_error(status(503, ("Retry-After", "7")))
    assert (error.kind, error.status, error.retry_after) == ("status_503", 503, 7.0)
    assert error.message == "handshake rejected: HTTP 503, retry after 7s"
    assert error.costs_server


def test_status_helper_is_what_other_libraries_use() -> None:
    """picows-style callers build the same error from a status and a header value."""
    error = status_connect_error(429, "0.25")
    assert (error.kind, error.retry_after) == ("status_429", 0.25)
    assert status_connect_error(503).retry_after is None


@pytest.mark.parametrize("value, seconds", [
    ("7", 7.0), (" 1.5 ", 1.5), ("-3", 0.0), (None, None), ("soon", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("inf", None), ("nan", None),
])
def test_retry_after_is_read_as_delta_seconds(value: str | None, seconds: float | None) -> None:
    """Delta-seconds are used (never negative); dates, words and non-finite values are not."""
    assert parse_retry_after(value) == seconds


def test_only_failures_that_never_reached_the_server_are_free() -> None:
    """costs_server is False for refused, DNS and fds only; unknown ('other') is not free."""
    assert FREE_KINDS == {"refused", "dns", "fds"}
    for kind in CONNECT_KINDS:
        assert ConnectError(kind, "x").costs_server is (kind not in FREE_KINDS)
    assert ConnectError("status_503", "x").costs_server


def test_connect_error_is_an_unreachable_and_passes_through() -> None:
    """A ConnectError is in the wsctl tree (exit code 3) and is not re-classified."""
    error = ConnectError("refused", "connection refused")
    assert isinstance(error, Unreachable) and error.exit_code == 3
    assert classify_connect_error(error) is error
    assert error.status is None
    assert repr(ConnectError("status_503", "m", retry_after=2.0)) == \
        "ConnectError('status_503', 'm', retry_after=2.0)"
