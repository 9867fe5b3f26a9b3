"""The file-descriptor limit every probe, bench and scenario process raises or checks."""

from __future__ import annotations

import resource

import pytest

from wsctl.errors import InvalidInput
from wsctl.fdlimit import check_fd_limit, raise_fd_limit


@pytest.fixture
def limits():
    """The limits as they were; put back after the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield soft, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_soft_limit_is_raised_to_the_hard_limit(limits) -> None:
    """From a lowered soft limit, raise_fd_limit goes up to the hard limit and says so."""
    soft, hard = limits
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to raise to")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    assert raise_fd_limit(100) == hard
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_more_than_the_hard_limit_is_refused_naming_what_and_how(limits) -> None:
    """Needing more than the hard limit is InvalidInput with the need, the limit and the
    hint; the check alone changes nothing."""
    soft, hard = limits
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to exceed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    with pytest.raises(InvalidInput) as refused:
        raise_fd_limit(hard + 1, "--count 9", "use fewer probes per process")
    assert str(refused.value) == (
        f"--count 9 needs about {hard + 1} file descriptors but a process may open at most "
        f"{hard} (ulimit -Hn); use fewer probes per process")
    with pytest.raises(InvalidInput, match="use more --processes"):
        check_fd_limit(hard + 1, "9 connections per process", "use more --processes")
    check_fd_limit(hard, "exactly the limit", "never shown")
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (min(soft, 256), hard)
