"""quiet_gc: the heap frozen and collections rare inside, everything restored after."""

from __future__ import annotations

import gc

import pytest

from wsctl.runtime import QUIET_THRESHOLDS, quiet_gc


def test_quiet_gc_restores_the_thresholds_it_found_even_after_an_error() -> None:
    """Inside: frozen heap, quiet thresholds; after (an exception too): as before."""
    before = gc.get_threshold()
    with pytest.raises(KeyError), quiet_gc():
        assert gc.get_threshold() == QUIET_THRESHOLDS and gc.get_freeze_count() > 0
        raise KeyError("boom")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
