"""Taking a run directory: it is ours or refused, and it is locked before anything in it is written.

The lock is an exclusive `flock` on the run's journal, held by its tracker for as long as the run is
open; the kernel drops it when the process ends, however it ends. A directory that holds anything
but one of our runs is refused and left exactly as it was.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import RunDirError
from orchestrator.fsutil import make_private_dir, open_private_append
from orchestrator.rundir.layout import JOURNAL, MANIFEST


def claim_new(run_dir: Path) -> BinaryIO:
    """Make `run_dir` ready for a new plan and lock it; returns the locked journal.

    The directory may be missing (it is created 0700), empty, or a run directory of ours whose
    planning never finished (a journal, no manifest). Anything else is refused, untouched.

    Raises:
        RunDirError: the place is unusable, holds a plan already, holds other files, or is in use.
    """
    _check_place(run_dir)
    if run_dir.is_dir():
        entries = _entries(run_dir)
        if MANIFEST in entries:
            raise RunDirError(
                f"{run_dir} already holds a plan; continue it with `orchestrator run` (same input) "
                f"or `orchestrator resume --run-dir {run_dir}`, or choose a new --run-dir"
            )
        if entries and JOURNAL not in entries:
            raise RunDirError(
                f"{run_dir} is not empty and is not a run directory of this tool; choose a new or "
                "empty --run-dir (nothing in it was changed)"
            )
    try:
        make_private_dir(run_dir)
    except OSError as exc:
        raise RunDirError(f"cannot create the run directory {run_dir}: {_why(exc)}") from None
    journal = lock_journal(run_dir)
    if (run_dir / MANIFEST).exists():  # another process planned here before we got the lock
        journal.close()
        raise RunDirError(f"{run_dir} was just planned by another process; choose a new --run-dir")
    return journal


def claim_existing(run_dir: Path) -> BinaryIO:
    """Lock the run in `run_dir` for this process; returns the locked journal.

    Raises:
        RunDirError: no run there, or another process uses it.
    """
    require_run(run_dir)
    return lock_journal(run_dir)


def require_run(run_dir: Path) -> None:
    """Refuse a directory that holds no run.

    Raises:
        RunDirError: naming what is there instead.
    """
    _check_place(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise RunDirError(
            f"{run_dir} holds no run (no {MANIFEST}); check --run-dir, or start a run with "
            "`orchestrator run`"
        )


def lock_journal(run_dir: Path) -> BinaryIO:
    """Open the journal (created 0600) and take its exclusive lock, or fail at once."""
    path = run_dir / JOURNAL
    try:
        journal = open_private_append(path, buffering=0)
    except OSError as exc:
        raise RunDirError(f"cannot open {path}: {_why(exc)}") from None
    try:
        fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        journal.close()
        raise RunDirError(
            f"{run_dir} is in use by another orchestrator process; wait for it to end or stop it"
        ) from None
    return journal


def _check_place(run_dir: Path) -> None:
    if run_dir.is_symlink() and not run_dir.exists():
        raise RunDirError(
            f"{run_dir} is a symbolic link to nothing; point --run-dir at a directory"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a directory; choose another --run-dir")
    for parent in run_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(
                    f"{run_dir} cannot be created: {parent} is a file; choose another --run-dir"
                )
            break


def _entries(run_dir: Path) -> set[str]:
    try:
        return set(os.listdir(run_dir))
    except OSError as exc:
        raise RunDirError(f"cannot read the run directory {run_dir}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
