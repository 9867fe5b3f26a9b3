"""The public surface of ``wsctl.chaos``."""

from __future__ import annotations

import wsctl.chaos


def test_all_lists_what_the_package_exports() -> None:
    """Everything in ``__all__`` exists, and the fault table has the documented types."""
    for name in wsctl.chaos.__all__:
        assert hasattr(wsctl.chaos, name), name
    assert set(wsctl.chaos.FAULTS) == {
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "drop_pongs",
        "drop_frames",
        "frame_delay",
        "close",
        "cut",
    }
