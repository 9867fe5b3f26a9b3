"""The file-descriptor limit: every connection a probe, bench or proxy holds is one, and
a run that needs more than its process may open is refused before it starts."""

from __future__ import annotations

import resource

from wsctl.errors import InvalidInput


def check_fd_limit(needed: int, what: str, hint: str) -> None:
    """InvalidInput (exit 2) when even the hard RLIMIT_NOFILE limit is below ``needed``:
    "WHAT needs about N file descriptors but a process may open at most H (ulimit -Hn);
    HINT"."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise InvalidInput(f"{what} needs about {needed} file descriptors but a process may "
                           f"open at most {hard} (ulimit -Hn); {hint}")


def raise_fd_limit(needed: int | None = None, what: str = "this run",
                   hint: str = "use fewer connections per process") -> int:
    """Raise this process's soft RLIMIT_NOFILE limit to the hard limit (or, when that is
    unlimited, to ``needed``) and return the soft limit now in force. With ``needed``,
    refuse first as ``check_fd_limit`` does when the hard limit is too low."""
    if needed is not None:
        check_fd_limit(needed, what, hint)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return soft
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed or 0)
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
