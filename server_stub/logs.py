"""Logging for the reference server: one line per connection event, text or JSON lines."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

FIELD_LIMIT = 256  # characters of one logged value (a path, a reason) before it is cut
MESSAGE_LIMIT = 4096  # characters of a whole message
# What a log line may not carry raw: C0/C1 controls (ESC, NUL, CR, LF, ...), DEL, and the
# Unicode line and format separators a terminal or a log shipper could act on.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cut(value: str, limit: int = FIELD_LIMIT) -> str:
    """``value`` cut to ``limit`` characters, saying how many were left out."""
    return value if len(value) <= limit else f"{value[:limit]}...(+{len(value) - limit} chars)"


class CleanRecords(logging.Filter):
    """Make every record safe to print before a formatter sees it: each string argument
    cut to ``FIELD_LIMIT`` characters (the message to ``MESSAGE_LIMIT``), and the
    message's non-printables escaped (ESC -> ``\\x1b``), so bytes from a request (a
    path, a header, a close reason) can neither forge nor break lines, in text or JSON."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(cut(a) if isinstance(a, str) else a for a in record.args)
        message = cut(record.getMessage(), MESSAGE_LIMIT)
        record.msg, record.args = _UNPRINTABLE.sub(_escape, message), None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and ``worker``, its index, in a
    ``--workers`` process)."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.worker is not None:
            line["worker"] = self.worker
        return json.dumps(line)


class TextFormatter(logging.Formatter):
    """``2026-12-02T10:00:00.123Z INFO message``, UTC (``... INFO worker=1 message`` in
    a ``--workers`` process); the date and time text is made once per second, not once
    per line."""

    def __init__(self, worker: int | None = None) -> None:
        tag = "" if worker is None else f"worker={worker} "
        super().__init__(f"%(asctime)s.%(msecs)03dZ %(levelname)s {tag}%(message)s")
        self.worker = worker
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
    handler.addFilter(CleanRecords())
    root = logging.getLogger("server_stub")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # websockets logs every rejected handshake and closing handshake; ours are better.
    logging.getLogger("websockets").setLevel(logging.ERROR)


def name_worker(index: int) -> None:
    """From now on every line this process logs names ``--workers`` worker ``index``."""
    for handler in logging.getLogger("server_stub").handlers:
        if isinstance(handler.formatter, JsonFormatter | TextFormatter):
            handler.setFormatter(type(handler.formatter)(worker=index))
