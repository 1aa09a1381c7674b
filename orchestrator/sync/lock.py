"""The sync lock: one `orchestrator sync` per state file at a time, whoever starts it.

A non-blocking `flock` on `STATE.lock`. The kernel drops it when the process ends, however it ends
(SIGKILL included), so a crashed sync never leaves a stale lock behind. The holder writes its pid
and start time into the file, so the one refused can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.fsutil import PRIVATE_FILE_MODE, utc_now_iso


class SyncBusyError(OrchestratorError):
    """Another sync holds the lock of this state file."""


def lock_path(state_path: Path) -> Path:
    """The lock file of a state file: `STATE.lock`, next to it."""
    return state_path.with_name(state_path.name + ".lock")


class SyncLock:
    """An exclusive, non-blocking lock held for the whole life of one sync.

    Use as a context manager; `acquire` raises at once if another process holds it.
    """

    def __init__(self, path: Path, fd: int) -> None:
        """Private: use `SyncLock.acquire`."""
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> SyncLock:
        """Take the lock at `path` (created 0600) or fail at once.

        Raises:
            SyncBusyError: another process holds it (the message names its pid when known).
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        except OSError as exc:
            raise ConfigError(
                f"cannot take the sync lock {path}: {exc.strerror or exc}; the state's directory "
                "must be writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise SyncBusyError(
                f"another sync is running on this state ({holder}holds {path}); "
                "this one did nothing. Schedule syncs further apart, or wait for it to finish"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for the message of the next one refused (best effort: the lock is ours).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {utc_now_iso()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        """Let the next sync in (idempotent). The file stays: deleting it would race a newcomer."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f"{text}, " if text else ""
