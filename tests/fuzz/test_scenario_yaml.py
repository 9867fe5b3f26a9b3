"""Scenario YAML, shaped like scenarios (name, duration, server, probes, timeline steps,
criteria) with edge values, and raw text: loading succeeds or raises InvalidInput whose
message starts ``FILE:LINE:``; never another exception, never unbounded time."""

from __future__ import annotations

import time
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import budget
from wsctl.errors import InvalidInput
from wsctl.scenario.model import loads

durations = st.sampled_from(["250ms", "5s", "2m", "1h", "0s", "-1s", ".5s", "1e3s", "87601h",
                             float("inf"), float("nan"), 10**400, 0, -1, True, "", "5 s"]) \
    | st.floats() | st.integers() | st.text(max_size=12)
leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | durations
anything = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)
actions = st.sampled_from(["server.kill", "server.term", "server.pause", "server.resume",
                           "server.start", "server.restart", "proxy.down", "proxy.up", "cut",
                           "toxic", "probes.add", "wait", "nope", ""])
steps = st.fixed_dictionaries({"do": actions | anything}, optional={
    "at": durations, "for": durations, "count": st.integers() | anything,
    "toxic": st.fixed_dictionaries({"type": st.sampled_from(["latency", "timeout", "bogus"])
                                    | anything}, optional={"attributes": anything,
                                                           "stream": anything}) | anything,
})
criteria = st.dictionaries(st.sampled_from(["reconnect_time.mean", "messages.lost",
                                            "connect_time.p50", "nope.p99"]) | st.text(max_size=10),
                           st.sampled_from(["< 5s", "== 0", "<= 0.8 * baseline", "~~"])
                           | anything, max_size=3)
scenario = st.fixed_dictionaries({"name": st.text(max_size=10) | anything,
                                  "duration": durations}, optional={
    "server": st.fixed_dictionaries({}, optional={
        "profile": st.sampled_from(["reference", "baseline", "x"]) | anything,
        "url": st.sampled_from(["ws://127.0.0.1:1/ws/{stream}", "http://x"]) | anything,
        "command": st.lists(st.text(max_size=8), max_size=3) | anything}) | anything,
    "proxy": st.booleans() | anything,
    "probes": st.fixed_dictionaries({}, optional={
        "count": st.integers() | anything, "stream": st.text(max_size=10) | anything,
        "heartbeat": st.fixed_dictionaries({}, optional={"interval": durations,
                                                         "timeout": durations})}) | anything,
    "timeline": st.lists(steps, max_size=4) | anything,
    "criteria": criteria | anything,
    "extra": anything,
})
documents = scenario | st.fixed_dictionaries(
    {"scenarios": st.lists(scenario, max_size=3) | anything},
    optional={"name": anything, "defaults": scenario | anything})


def load_or_refuse(text: str) -> None:
    """Loading ``text`` succeeds, or fails with InvalidInput naming f.yaml and a line."""
    started = time.monotonic()
    try:
        loads(text, "f.yaml")
    except InvalidInput as exc:
        assert str(exc).startswith("f.yaml:"), str(exc)
        assert str(exc).split(":")[1].isdigit(), str(exc)
    assert time.monotonic() - started < 5


@example({"name": "x", "duration": float("nan")})
@example({"name": "x", "duration": "1s", "timeline": [{"do": "wait", "for": float("inf")}]})
@given(documents)
@budget(200)
def test_shaped_scenarios_load_or_name_file_and_line(document: Any) -> None:
    """Scenario-like trees dumped to YAML: a suite, or InvalidInput at FILE:LINE."""
    load_or_refuse(yaml.safe_dump(document, allow_unicode=True))


@example("a: &a [1, *a]\n")
@example("name: x\nduration: 5s\x1f\n")  # a control character escaped as ReaderError
@example("[" * 5000 + "]" * 5000)
@example("name: x\nduration: .inf\n")
@given(st.text(max_size=400) | st.lists(st.sampled_from(
    ["name: x", "duration: 5s", "timeline:", "  - do: wait", "    for: .nan", "  - *a",
     "x: &a [1, 2]", "criteria:", "  messages.lost: '== 0'", "- ", "{", "]", "\t", "!!python/x",
     "scenarios:", "  - name: y", "defaults: {probes: {count: 1}}", "? ", "%YAML 1.2", "---"]),
    max_size=12).map("\n".join))
@budget(200)
def test_raw_text_loads_or_names_file_and_line(text: str) -> None:
    """Any text: a suite, or InvalidInput at FILE:LINE; never another exception."""
    load_or_refuse(text)
