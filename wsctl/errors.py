"""One error tree for wsctl; lower-layer errors are translated where they enter.

    WsctlError                 base; ``exit_code`` maps to the CLI's exit status
    ├── InvalidInput (2)       bad flags, URLs, files: nothing was started or changed
    ├── CriteriaFailed (1)     a run happened and at least one criterion failed
    └── RunFailed (3)          the run could not happen or stopped
        ├── Unreachable        target refused, DNS, TLS or handshake status
        ├── PortInUse          a listen address is taken
        └── ActionFailed       a scenario's timeline action could not be carried out

Messages are one line a person can act on; tracebacks are only shown with ``--debug``.
"""

from __future__ import annotations


class WsctlError(Exception):
    """Base of every error wsctl reports to a person."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(WsctlError):
    """Input is wrong (flag, URL, file); nothing started or changed. Exit code 2."""

    exit_code = 2


class CriteriaFailed(WsctlError):
    """The run completed and at least one criterion failed. Exit code 1."""

    exit_code = 1


class RunFailed(WsctlError):
    """The run could not happen or could not go on. Exit code 3."""

    exit_code = 3


class Unreachable(RunFailed):
    """A target could not be reached: refused, DNS, TLS or a handshake status."""


class PortInUse(RunFailed):
    """A listen address is already taken."""


class ActionFailed(RunFailed):
    """A timeline action could not be carried out (e.g. killing a server that is not
    running); the scenario stops there and is an error."""
