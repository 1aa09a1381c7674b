"""The process's exit codes: what a scheduler acts on. The only place these numbers live."""

from __future__ import annotations

from enum import IntEnum

from orchestrator.outcomes import Outcome


class ExitCode(IntEnum):
    """Exit codes (README, "Exit codes")."""

    OK = 0  # every user imported / ready / every sampled user found
    USERS_FAILED = 1  # finished, but some users were rejected locally or by Auth0
    CANNOT_START = 2  # bad arguments, input, credentials or connection: nothing sent
    UNFINISHED = 3  # stopped unfinished: `resume` continues it
    SYNC_BUSY = 4  # another sync holds the state's lock: nothing done
    INTERRUPTED = 130  # Ctrl-C/SIGTERM after saving the state


_BY_OUTCOME: dict[Outcome, ExitCode] = {
    Outcome.OK: ExitCode.OK,
    Outcome.USERS_FAILED: ExitCode.USERS_FAILED,
    Outcome.CANNOT_START: ExitCode.CANNOT_START,
    Outcome.UNFINISHED: ExitCode.UNFINISHED,
    Outcome.BUSY: ExitCode.SYNC_BUSY,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
}


def for_outcome(outcome: Outcome) -> ExitCode:
    """The exit code of a command that ended with `outcome`."""
    return _BY_OUTCOME[outcome]
