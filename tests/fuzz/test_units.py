"""Duration parsers (wsctl/units.py): any value is a finite number of seconds within the
documented bounds, or InvalidInput; and what a duration formatter writes reads back."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from server_stub.config import seconds_text
from tests.fuzz.support import budget
from wsctl.errors import InvalidInput
from wsctl.units import (
    MAX_DURATION,
    MIN_INTERVAL,
    parse_duration,
    parse_interval,
    parse_positive_duration,
)

texts = st.text(max_size=30) | st.from_regex(
    r"\s?(\d{0,400}(\.\d{0,5})?|\.\d+)\s?(us|ms|s|m|h|x)?\s?", fullmatch=True)
values = texts | st.integers() | st.floats() | st.none() | st.booleans() | st.sampled_from(
    [10**400, -(10**400), "1" * 5000, "87600h", "87600.0001h", "315360000", "0", "-0"])


@example("1" * 5000 + "h")
@example(-(10**300))  # its error line once held all 301 characters
@example(float("-0.0"))
@given(values)
@budget(500)
def test_every_value_is_bounded_seconds_or_invalid_input(value):
    """parse_duration: 0 <= seconds <= MAX_DURATION, finite; else InvalidInput."""
    try:
        seconds = parse_duration(value, "x")
    except InvalidInput as exc:
        assert str(exc).startswith("x"), exc
        assert len(str(exc)) < 300  # a 5,000-digit input is not echoed whole
        return
    assert isinstance(seconds, float) and math.isfinite(seconds)
    assert 0 <= seconds <= MAX_DURATION


@given(values)
@budget(300)
def test_positive_and_interval_bounds(value):
    """parse_positive_duration > 0; parse_interval >= MIN_INTERVAL; both only refuse with
    InvalidInput, and only what parse_duration reads does either accept."""
    for parse, low in ((parse_positive_duration, 0.0), (parse_interval, MIN_INTERVAL)):
        try:
            seconds = parse(value, "x")
        except InvalidInput:
            continue
        assert seconds == parse_duration(value) and low <= seconds <= MAX_DURATION
        assert seconds > 0


@example(1000000.0)  # was written 1e+06s, which no parser reads
@example(1.5e-8)
@given(st.floats(min_value=0, max_value=MAX_DURATION, allow_nan=False))
@budget(300)
def test_seconds_text_reads_back(seconds):
    """What seconds_text writes (help defaults) parses back to the same duration (to the
    last bit: it writes every digit)."""
    assert parse_duration(seconds_text(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-12)
