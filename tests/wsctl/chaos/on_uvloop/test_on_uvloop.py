"""The conformance suite, the TCP and the WebSocket faults again, with the proxy on uvloop.

``wsctl chaos serve`` runs on uvloop where it is installed; uvloop keeps the
``data_received`` it finds when a protocol is set, so the swap between the plain relay
and the fault stages must hold there too. The tests are the same functions, imported;
this folder's conftest gives them a uvloop loop.
"""

from __future__ import annotations

import asyncio

import pytest

uvloop = pytest.importorskip("uvloop")

from tests.wsctl.chaos.test_conformance import *  # noqa: E402, F403
from tests.wsctl.chaos.test_tcp_faults import *  # noqa: E402, F403
from tests.wsctl.chaos.test_websocket_faults import *  # noqa: E402, F403


async def test_runs_on_uvloop() -> None:
    """The tests of this module really run on a uvloop loop."""
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
