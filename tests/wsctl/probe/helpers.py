"""Frames and machines for probe tests."""

import json
import random

from wsctl.backoff import BackoffPolicy
from wsctl.probe.machine import ProbeConfig, ProbeMachine


def welcome(epoch="e1", offset=0, recovered=True, replayed=0, interval=1.0, timeout=1.0):
    return json.dumps({"type": "welcome", "stream": "s", "epoch": epoch, "offset": offset,
                       "recovered": recovered, "replayed": replayed,
                       "heartbeat": {"interval": interval, "timeout": timeout}})


def event(offset, ts=100.0):
    return json.dumps({"type": "event", "offset": offset, "ts": ts,
                       "data": {"step": offset, "total": 100, "status": "running",
                                "message": ""}})


def machine(mode="resume", now=0.0, seed=1, env=None, **kwargs):
    kwargs.setdefault("backoff", BackoffPolicy(kind="exponential", base=1, cap=8))
    config = ProbeConfig("ws://127.0.0.1:9/ws/s{n}", mode=mode, **kwargs)
    return ProbeMachine(3, config, config.new_metrics(), random.Random(seed), now,
                        env=env or {})
