"""Durable, private files: atomic replacement, owner-only dirs and appends, and the run's clock.

A run directory holds password hashes, so everything created here is 0600 (files) or 0700 (dirs)
from the first byte. What to write, and when, is decided by the callers.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def utc_now_iso(moment: datetime | None = None) -> str:
    """`moment` (default: now) in UTC as ISO-8601 with milliseconds, e.g. ``2026-11-27T02:24:04.123Z``."""
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_private_dir(path: Path) -> None:
    """Create `path` (and missing parents, with the usual mode) and make it owner-only (0700).

    An existing directory is made 0700 too: it is about to hold user data.
    """
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is filtered by the umask and ignored for an existing dir: set it explicitly.
    os.chmod(path, PRIVATE_DIR_MODE)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a create, rename or unlink) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file, whole.

    The temp file is created 0600 in the same directory (a rename is atomic only within one file
    system), written, fsynced, renamed over `path`, and the directory is fsynced so the rename
    itself survives a power loss. A missing parent directory is created private.

    Args:
        path: the file to replace (or create).
        data: its whole new content.

    Raises:
        OSError: the write failed; `path` is unchanged and no temp file is left behind.
    """
    parent = path.parent
    if not parent.is_dir():
        make_private_dir(parent)
    # mkstemp creates the file O_EXCL with mode 0600, whatever the umask.
    fd, temp_name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_dir(parent)


def open_private_append(path: Path, *, buffering: int = -1) -> BinaryIO:
    """Open `path` for appending, creating it 0600; an existing file is made 0600 too.

    Args:
        path: the file to append to.
        buffering: as for `open`; 0 gives unbuffered writes (one `write` is one system call).

    Returns:
        A binary file object; the caller closes it.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        return open(fd, "ab", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise
