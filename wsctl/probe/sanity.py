"""Whether a probe run's figures mean anything: "failures pass silently" no more.

A run can connect, last its duration and still measure nothing true: most frames were not
the protocol the mode expects, or most connection attempts failed, or most connections
were dropped. ``measurement_problem`` says so in one line naming the likely cause; ``wsctl
probe`` prints it as a warning and exits 1 (docs/probe.md), and ``wsctl run`` can use it
the same way. Pure: it reads a result's counters and details.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from wsctl.metrics import Result

MOST = 0.5  # "most": more than this share


def _cause(mode: str, dialect: dict[str, Any] | None) -> str:
    if mode == "resume":
        return ("were not the reference protocol (v1): for another service use --mode listen "
                "with a protocol block (docs/own-service.md)")
    if mode == "echo":
        return ("were not echoes of the probe's messages: is it an echo server? to count "
                "what it sends use --mode listen")
    if dialect and dialect.get("adapter") == "socketio":
        return ("were not Socket.IO (v5, Engine.IO v4): is the URL the Socket.IO server's "
                "(path /socket.io/ by default)?")
    fields = [f"protocol.{name}" for name in ("sequence", "timestamp")
              if dialect and dialect.get(name)]
    where = " or ".join(fields) or "the protocol block"
    return f"had a value that is not a number or time at {where}: check the field paths"


def _top(errors: dict[str, int] | None) -> str:
    common = Counter(errors or {}).most_common(1)
    return f"; most common: {common[0][0]}" if common else ""


def measurement_problem(result: Result) -> str | None:
    """One line naming why ``result``'s figures cannot be trusted, or None.

    - most frames invalid: ``messages.invalid`` > half of the frames received;
    - most connection attempts failed: ``connections.failed`` > half of all attempts;
    - most connections dropped: ``connections.lost`` > half of those opened, in a run
      where no fault was announced (``details.faults``: a fault is expected to drop them);
    - most probes ended early by the server's normal close (1000), which is final.
    """
    counters = result.metrics.counters
    config = result.config or {}
    mode = str(config.get("mode", "resume"))
    dialect = config.get("dialect")
    invalid = counters.get("messages.invalid", 0)
    frames = invalid + counters.get("messages.received", 0)
    if frames and invalid > MOST * frames:
        share = round(100 * invalid / frames)
        return f"{share}% of frames ({invalid} of {frames}) {_cause(mode, dialect)}"
    faults = result.details.get("faults", 0)
    failed = counters.get("connections.failed", 0)
    opened = counters.get("connections.opened", 0)
    errors = result.details.get("errors")
    if not faults and failed > MOST * (failed + opened):
        return (f"{failed} of {failed + opened} connection attempts failed"
                f"{_top(errors)}: the figures describe the failures, not the service")
    hint = ""
    if mode == "listen" and not (dialect and dialect.get("adapter") == "socketio"):
        hint = (" (if it is a Socket.IO server, it closes clients that do not answer its "
                "pings: use --socketio)")
    lost = counters.get("connections.lost", 0)
    if not faults and opened and lost > MOST * opened:
        return (f"{lost} of {opened} connections were dropped{_top(errors)}{hint}: the "
                "server or the link keeps closing them")
    probes = result.details.get("probes", 0)
    closed = result.details.get("closed_by_server", 0)
    if probes and closed > MOST * probes:
        return (f"{closed} of {probes} probes were closed by the server (1000, final) "
                f"before the run's end{hint}: the figures cover only part of the run")
    return None
