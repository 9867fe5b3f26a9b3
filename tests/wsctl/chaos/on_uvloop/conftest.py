"""Every test in this folder runs on a uvloop event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

uvloop = pytest.importorskip("uvloop")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factory: Callable[[], Any] = uvloop.new_event_loop
    return {"uvloop": factory}
