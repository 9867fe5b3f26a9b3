"""The public surface of wsctl.probe and wsctl.metrics is what __all__ lists."""

import wsctl.metrics
import wsctl.probe


def test_probe_all_is_importable_and_complete():
    """Every name in wsctl.probe.__all__ exists; the fleet API is among them."""
    assert all(hasattr(wsctl.probe, name) for name in wsctl.probe.__all__)
    assert {"Fleet", "ProbeConfig", "ProbeMachine", "State"} <= set(wsctl.probe.__all__)


def test_metrics_all_is_importable_and_complete():
    """Every name in wsctl.metrics.__all__ exists; results, schema and merge are public."""
    assert all(hasattr(wsctl.metrics, name) for name in wsctl.metrics.__all__)
    assert {"Result", "SCHEMA", "merge", "validate", "Histogram"} <= set(wsctl.metrics.__all__)
