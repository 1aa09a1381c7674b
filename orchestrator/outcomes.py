"""How a use case ended, as data: what the CLI turns into an exit code and a scheduler acts on.

Use cases return results carrying an `Outcome`; only the CLI knows the numbers behind them.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The end of a command, from best to worst for the person who ran it."""

    #: Everything done: every user imported, the tenant ready, every sampled user found.
    OK = "ok"
    #: Finished, but some users were rejected locally, failed at Auth0, or are missing/differ.
    USERS_FAILED = "users_failed"
    #: Could not start; nothing was sent.
    CANNOT_START = "cannot_start"
    #: Stopped unfinished (failed chunks, API unreachable): a resume continues.
    UNFINISHED = "unfinished"
    #: Another sync holds the state's lock; nothing done.
    BUSY = "busy"
    #: Ctrl-C or SIGTERM after saving the state.
    INTERRUPTED = "interrupted"
