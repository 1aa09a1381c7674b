"""One event loop per command, and the signals that stop it cleanly.

`run_async` runs a coroutine function on anyio's asyncio backend (aiohttp and aiolimiter need
asyncio) and unwraps task-group exception groups to the error that matters. `stop_on_signals` turns
Ctrl-C and SIGTERM into the cancellation of one task group, so state is saved on the way out.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from orchestrator.errors import Interrupted, OrchestratorError

T = TypeVar("T")


def run_async(function: Callable[[], Awaitable[T]]) -> T:
    """Run `function` in a fresh event loop; task-group error groups come out as their first error."""
    try:
        return anyio.run(function, backend="asyncio")
    except BaseExceptionGroup as group:
        raise first_error(group) from group


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that matters in a group: an interruption first, then our own errors, in order."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    for kinds in ((Interrupted, KeyboardInterrupt), (OrchestratorError,)):
        for leaf in leaves:
            if isinstance(leaf, kinds):
                return leaf
    return leaves[0]


class SignalWatch:
    """Cancels a task group at the first SIGINT or SIGTERM; `stopped` says whether it did.

    Start `watch` in the task group before the work, and cancel the group when the work is done.
    """

    def __init__(self) -> None:
        self.stopped = False

    async def watch(self, tasks: anyio.abc.TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                self.stopped = True
                tasks.cancel_scope.cancel()
                return
