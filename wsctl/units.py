"""Parsing of the units people write: durations (``250ms``, ``5s``, ``2m``, ``1h``).

One duration grammar for every flag, scenario file and chaos API field:

    duration := number | string
    number   := a non-negative int or float (seconds; not a bool, not NaN)
    string   := [space] decimal [space] [unit] [space]
    decimal  := digits ["." [digits]] | "." digits      e.g. 5, 1.5, 5., .5
    unit     := "us" | "ms" | "s" | "m" | "h"            none: seconds
"""

from __future__ import annotations

import math
import re

from wsctl.errors import InvalidInput

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|m|h)?\s*")
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: object, what: str = "duration") -> float:
    """Seconds in ``text`` (see the grammar above); InvalidInput naming ``what`` if unreadable."""
    if isinstance(text, int | float) and not isinstance(text, bool) and not math.isnan(text):
        if text < 0:
            raise InvalidInput(f"{what}: must not be negative, got {text}")
        return float(text)
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise InvalidInput(
            f"{what}: cannot read {text!r} as a duration; write e.g. 250ms, 5s, 2m or 1h"
        )
    return float(match.group(1)) * _SECONDS[match.group(2)]


def parse_positive_duration(text: str | float | int, what: str = "duration") -> float:
    """``parse_duration`` for things that cannot be zero (timeouts, intervals, run time)."""
    seconds = parse_duration(text, what)
    if seconds <= 0:
        raise InvalidInput(f"{what} must be greater than zero, got {text!r}")
    return seconds
