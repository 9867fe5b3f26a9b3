"""Parsing of the units people write: durations (``250ms``, ``5s``, ``2m``, ``1h``).

One duration grammar for every flag, scenario file and chaos API field:

    duration := number | string
    number   := a non-negative int or float (seconds; not a bool, not NaN or infinite)
    string   := [space] decimal [space] [unit] [space]
    decimal  := digits ["." [digits]] | "." digits      e.g. 5, 1.5, 5., .5
    unit     := "us" | "ms" | "s" | "m" | "h"            none: seconds

Every duration is at most ``MAX_DURATION`` (10 years, 87600h): past it a run, a token or a
schedule would in effect never end, and a 400-digit number is not a time but an overflow.
Periods that something repeats on (ping intervals, schedules) are at least
``MIN_INTERVAL`` (10ms, ``parse_interval``): shorter ones only burn a core.
"""

from __future__ import annotations

import math
import re

from wsctl.errors import InvalidInput

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|m|h)?\s*")
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION = 10 * 365 * 24 * 3600.0
MIN_INTERVAL = 0.01


def parse_duration(text: object, what: str = "duration") -> float:
    """Seconds in ``text`` (see the grammar above); InvalidInput naming ``what`` if unreadable."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text == text:  # not NaN
        if text < 0:
            raise InvalidInput(f"{what}: must not be negative, got {_shown(text)}")
        seconds = float(text) if text <= MAX_DURATION else math.inf  # a huge int: no overflow
    else:
        match = _DURATION.fullmatch(text) if isinstance(text, str) else None
        if not match:
            raise InvalidInput(f"{what}: cannot read {_shown(text)!r} as a duration; "
                               "write e.g. 250ms, 5s, 2m or 1h")
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if not seconds <= MAX_DURATION:
        raise InvalidInput(f"{what}: at most {MAX_DURATION / 3600:.0f}h (10 years), "
                           f"got {_shown(text)}")
    return seconds


def _shown(text: object) -> object:
    """``text`` cut for an error line (a 400-digit number is not worth 400 columns)."""
    return text if len(str(text)) <= 40 else str(text)[:20] + "…" + str(text)[-10:]


def parse_positive_duration(text: str | float | int, what: str = "duration") -> float:
    """``parse_duration`` for things that cannot be zero (timeouts, intervals, run time)."""
    seconds = parse_duration(text, what)
    if seconds <= 0:
        raise InvalidInput(f"{what} must be greater than zero, got {_shown(text)!r}")
    return seconds


def parse_interval(text: str | float | int, what: str = "interval") -> float:
    """``parse_positive_duration`` for periods something repeats on: at least ``MIN_INTERVAL``."""
    seconds = parse_positive_duration(text, what)
    if seconds < MIN_INTERVAL:
        raise InvalidInput(f"{what} must be at least {MIN_INTERVAL * 1000:.0f}ms, "
                           f"got {_shown(text)!r}")
    return seconds
