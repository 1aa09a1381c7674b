"""`validate` and `chunk`: plan an export without sending anything."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestrator.errors import ConfigError
from orchestrator.fsutil import PRIVATE_FILE_MODE
from orchestrator.outcomes import Outcome
from orchestrator.plan.planner import PlanStats, count_only, plan_chunks
from orchestrator.rundir.create import create_plan, layout_of
from orchestrator.settings import PlanSettings
from orchestrator.sources.formats import Export
from orchestrator.sources.reader import estimate_users


@dataclass(frozen=True, slots=True)
class PlanResult:
    """A planning pass: its counts, and whether chunk files were written (`chunk`) or not."""

    stats: PlanStats
    settings: PlanSettings
    chunks_written: bool
    run_dir: Path | None = None

    @property
    def outcome(self) -> Outcome:
        return Outcome.USERS_FAILED if self.stats.users_rejected else Outcome.OK

    def summary(self) -> dict[str, object]:
        return self.stats.as_json(
            self.settings.max_request_bytes, chunks_written=self.chunks_written
        )


def validate(source: str, settings: PlanSettings, *, rejects: Path | None = None) -> PlanResult:
    """Read, normalise and judge every user; count how they would be chunked. No network.

    Args:
        source: the export's path, or ``-`` for stdin.
        settings: the plan settings (the chunking is counted as `chunk` would do it).
        rejects: where to write the refused users with their reasons (None: count only).

    Raises:
        InputError: the export is malformed.
        ConfigError: `rejects` would overwrite the export, or cannot be written.
    """
    export = Export(source, settings.source, fingerprint=False)
    layout = layout_of(settings)
    with _rejects_file(rejects, source) as out:
        stats = plan_chunks(
            export.batches(),
            settings,
            layout,
            count_only(layout),
            rejects=out,
            where=export.reader.where,
            expected_users=estimate_users(source),
            check_passwords=False,  # reported, not refused: nothing is planned to be sent
        )
    return PlanResult(stats, settings, chunks_written=False)


@contextlib.contextmanager
def _rejects_file(path: Path | None, source: str) -> Iterator[IO[bytes] | None]:
    """The rejects file (0600, truncated), or None when rejects are only counted."""
    if path is None:
        yield None
        return
    refuse_overwriting_input(path, source, "--rejects")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        fd = os.open(path, flags, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise ConfigError(f"--rejects {path}: cannot write it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "wb", buffering=1 << 20) as out:
        yield out


def chunk(source: str, run_dir: Path, settings: PlanSettings) -> PlanResult:
    """Plan only: chunk files, rejects and the manifest written to a new run directory."""
    tracker, stats = create_plan(source, run_dir, settings)
    tracker.close()
    return PlanResult(stats, settings, chunks_written=True, run_dir=run_dir)


def refuse_overwriting_input(path: Path, source: str, option: str) -> None:
    """An output path must never be the export itself (same file by device and inode).

    Raises:
        ConfigError: naming the option.
    """
    if source == "-":
        return
    try:
        output, given = os.stat(path), os.stat(source)
    except OSError:
        return  # the output does not exist yet (or the input is reported by the reader)
    if (output.st_dev, output.st_ino) == (given.st_dev, given.st_ino):
        raise ConfigError(
            f"{option} {path} is the input file itself; writing it would destroy the export: "
            "choose another path"
        )
