"""The child side of a worker process's line protocol (probe and bench workers).

A worker writes one JSON object a line on stdout (``emit``); ``report_failures`` runs its
body and turns what ends it badly into the protocol's last line, ``{"error": ...,
"exit_code": N}``: a ``WsctlError`` with its own exit code, anything else as exit 3.
Ctrl-C is the parent's to report (exit 130, no line).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from wsctl.errors import WsctlError


def emit(obj: dict[str, Any]) -> None:
    """One protocol line on stdout, flushed at once (the parent reads line by line)."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def report_failures(body: Callable[[], int]) -> int:
    """``body()``'s exit code; a failure is emitted as the error line and its code."""
    try:
        return body()
    except WsctlError as exc:
        emit({"error": str(exc), "exit_code": exc.exit_code})
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}", "exit_code": 3})
        return 3
