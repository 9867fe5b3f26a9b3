"""Parsing of the units people write: durations (``250ms``, ``5s``, ``2m``, ``1h``)."""

from __future__ import annotations

import re

from wsctl.errors import InvalidInput

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|m|h)?\s*")
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """Seconds in ``text``: a number with an optional unit (us, ms, s, m, h; default s)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise InvalidInput(f"{what} must not be negative, got {text}")
        return float(text)
    match = _DURATION.fullmatch(str(text))
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
