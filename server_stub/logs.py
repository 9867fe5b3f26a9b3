"""Logging for the reference server: one line per connection event, text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "ts": round(record.created, 6),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


class TextFormatter(logging.Formatter):
    """``2026-12-02T10:00:00.123Z INFO message``, UTC; the date and time text is made
    once per second, not once per line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._stamp


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    """Send server logs to stderr (stdout is reserved for the listening URL).

    Meant for the server's own process: it also turns off what logging records that no
    line here prints (the caller's file and line, thread and process names), which the
    logging HOWTO's "Optimization" section lists; there are two lines per connection.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("server_stub")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # websockets logs every rejected handshake and closing handshake; ours are better.
    logging.getLogger("websockets").setLevel(logging.ERROR)
