"""Whether a bench measured what it claims to: failures never pass silently.

A run where most connections failed to open or were dropped, most frames were invalid, or
listen mode heard nothing (or none of what it heard carried the configured sequence or
timestamp field) happened, but its figures describe a broken run. ``check`` turns each
such finding into a failed verdict whose message names the likely cause; the bench ends
with that line as a warning and exit code 1 (a run that could not happen at all, nothing
opened, stays exit 3: ``session.check_reachable``). Pure: reads a Result.
"""

from __future__ import annotations

from typing import Any

from wsctl.metrics import Result
from wsctl.results.criteria import Status, Verdict, judge, parse

__all__ = ["check"]

EP = "wsctl bench: a valid measurement"

CONNECT_CAUSES = {
    "refused": "the server refused them (is it running? is its backlog full?)",
    "timeout": "handshakes timed out (the server, or this generator, is overloaded)",
    "fds": "this machine ran out of file descriptors (use --processes, raise ulimit -n)",
    "reset": "the server reset them (over capacity, or a proxy in between)",
    "dropped": "the server hung up during the handshake",
    "dns": "the host name does not resolve",
    "tls": "the TLS handshake failed",
    "protocol": "the server did not answer as a WebSocket server (wrong URL or path?)",
}
CLOSE_CAUSES = {
    "1006": "dropped without a close frame (a crash, a proxy, or an idle timeout)",
    "1000": "the server ended them normally while the bench was still measuring",
    "1001": "the server is going away (shutting down or draining)",
    "1002": "protocol error: the server rejected the frames it got",
    "1003": "the server does not accept this kind of data",
    "1007": "the server rejected a message's content (invalid data)",
    "1008": "the server's policy rejected them (wrong --mode for this server, a missing "
            "header or --on-open message?)",
    "1009": "messages too big for the server (lower --payload-size)",
    "1011": "a server error or its keepalive timeout",
    "1013": "the server is over capacity (try again later)",
}


def _top(counters: dict[str, int], prefix: str) -> list[tuple[str, int]]:
    found = [(k[len(prefix):], v) for k, v in counters.items() if k.startswith(prefix) and v]
    return sorted(found, key=lambda kv: -kv[1])


def _listed(items: list[tuple[str, int]], prefix: str) -> str:
    return ", ".join(f"{prefix}{k} x{v}" for k, v in items[:3])


def _cause(kinds: list[tuple[str, int]], causes: dict[str, str]) -> str:
    if not kinds:
        return "no cause was recorded"
    kind = kinds[0][0]
    if kind.startswith("status_"):
        return f"the server answered the handshake with HTTP {kind[len('status_'):]}"
    return causes.get(kind, f"{kind} (see docs/metrics.md)")


def findings(result: Result) -> list[tuple[str, str, str]]:
    """``(criterion key, expectation, line)`` for each way this run is not a valid
    measurement; empty when it is (or when nothing opened: that is exit 3 already)."""
    counters = result.metrics.counters
    opened = counters.get("connections.opened", 0)
    if opened == 0:
        return []
    out: list[tuple[str, str, str]] = []
    failed = counters.get("connections.failed", 0)
    attempts = opened + failed
    if failed * 2 > attempts:
        kinds = _top(counters, "errors.")
        kinds = [(k, v) for k, v in kinds if not k.startswith("closed_")]
        out.append(("connections.failed", f"<= {attempts // 2}",
                    f"{failed} of {attempts} connections failed to open "
                    f"({_listed(kinds, 'errors.')}): {_cause(kinds, CONNECT_CAUSES)}"))
    lost = counters.get("connections.lost", 0)
    if lost * 2 > opened:
        codes = _top(counters, "errors.closed_")
        out.append(("connections.lost", f"<= {opened // 2}",
                    f"{lost} of {opened} connections were closed before the end "
                    f"({_listed(codes, 'closes.')}): {_cause(codes, CLOSE_CAUSES)}"))
    if out:  # what the messages say is moot when the connections themselves failed
        return out
    config = result.config or {}
    protocol: dict[str, Any] = config.get("protocol") or {}
    received = counters.get("messages.received", 0)
    invalid = counters.get("messages.invalid", 0)
    if invalid * 2 > received:
        paths = " / ".join(f"{name} {_path(protocol, name)!r}"
                           for name in ("sequence", "timestamp") if protocol.get(name))
        out.append(("messages.invalid", f"<= {received // 2}",
                    f"{invalid} of {received} messages had a {paths} field that is not a "
                    "number or a time: check the field paths and the timestamp unit"))
    if out or config.get("mode") != "listen":
        return out
    if received == 0:
        out.append(("messages.received", "> 0",
                    f"no message arrived on {opened} open connection(s) in --mode listen: "
                    "does the service need a subscribe message (--on-open JSON), a header "
                    "or another URL, or is it silent for longer than --duration?"))
        return out
    if protocol.get("sequence") and "messages.lost" not in counters:
        out.append(("messages.lost", ">= 0",
                    f"none of the {received} messages had a number at "
                    f"{_path(protocol, 'sequence')!r}: check --sequence"))
    latency = result.metrics.histograms.get("delivery_latency")
    if protocol.get("timestamp") and (latency is None or latency.count == 0):
        out.append(("delivery_latency.count", "> 0",
                    f"none of the {received} messages had a time at "
                    f"{_path(protocol, 'timestamp')!r}: check --timestamp"))
    return out


def _path(protocol: dict[str, Any], name: str) -> str:
    value = protocol.get(name)
    return str(value.get("path") if isinstance(value, dict) else value)


def check(result: Result) -> list[Verdict]:
    """A failed verdict per finding (its message is the line to print); the lines are
    also kept in ``result.details["invalid"]``."""
    verdicts = []
    for key, expect, line in findings(result):
        verdict = judge(parse(key, expect, ep=EP), result)
        status: Status = "error" if verdict.measured is None else "fail"
        verdicts.append(Verdict(verdict.criterion, status, verdict.measured,
                                verdict.threshold, message=line))
    result.details["invalid"] = [v.message for v in verdicts]
    return verdicts
