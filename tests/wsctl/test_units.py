"""Duration parsing."""

import pytest

from wsctl.errors import InvalidInput
from wsctl.units import parse_duration, parse_interval, parse_positive_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("5s", 5.0), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), (3, 3.0),
     ("500us", 0.0005), (1.5, 1.5), ("3", 3.0), ("5.", 5.0), (".5s", 0.5), (" 2 m ", 120.0),
     ("0", 0.0), (0, 0.0)],
)
def test_durations_in_every_unit(text, seconds):
    """Each unit converts to the right number of seconds; a bare number is seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "5 sec", "-1s", "abc", "1d", "1e3", "5s\n5s", True, None, float("nan"), [5]]
)
def test_bad_duration_names_the_field(text):
    """A bad duration is InvalidInput naming what was being read."""
    with pytest.raises(InvalidInput, match="^ttl: cannot read .* as a duration"):
        parse_duration(text, "ttl")


@pytest.mark.parametrize("number", [-1, -0.5])
def test_negative_number_is_refused(number):
    """A negative number of seconds is InvalidInput naming the field and the value."""
    with pytest.raises(InvalidInput, match=f"^at: must not be negative, got {number}$"):
        parse_duration(number, "at")



@pytest.mark.parametrize("text", ["0", "0s", "0ms", 0])
def test_positive_duration_refuses_zero_naming_the_option(text):
    """A duration that must be positive refuses zero with the option's name."""
    with pytest.raises(InvalidInput, match="--ping-timeout must be greater than zero"):
        parse_positive_duration(text, "--ping-timeout")
    assert parse_positive_duration("250ms", "--ping-timeout") == 0.25


@pytest.mark.parametrize("value", [float("inf"), 1e400, 10**400, "1" * 400 + "s",
                                   "99999999999h", 87601 * 3600])
def test_durations_are_finite_and_bounded(value):
    """Infinite, overflowing and over-10-years durations are InvalidInput naming the bound."""
    with pytest.raises(InvalidInput, match=r"^--ttl: at most 87600h \(10 years\), got "):
        parse_duration(value, "--ttl")
    assert parse_duration("87600h") == 87600 * 3600


def test_interval_has_a_minimum():
    """A repeating period under 10ms is refused (it would only burn a core); 10ms is fine."""
    with pytest.raises(InvalidInput, match="--ping-interval must be at least 10ms, got '1us'"):
        parse_interval("1us", "--ping-interval")
    assert parse_interval("10ms", "--ping-interval") == 0.01
