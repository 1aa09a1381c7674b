"""The run directory's file names: where each piece of a run lives. Names only, no logic.

Layout (every file private to the owner; the dir is 0700)::

    DIR/manifest.json          the plan and every chunk's state (compacted from the journal)
    DIR/journal.ndjson         one line per transition since the last compaction; its lock is the
                               run directory's lock
    DIR/chunks/NNNNNN.json     the users file of chunk NNNNNN, sent as is
    DIR/rejects.ndjson         users refused before upload, with their reasons
    DIR/unmatched-hashes.ndjson  rows of --password-hashes that matched no user (no hashes in it)
    DIR/errors/NNNNNN.ndjson   per-user errors of chunk NNNNNN's job, fetched when it completed
    DIR/failed-users.ndjson    all per-user errors of the run (assembled by the report)
    DIR/retry.json             failed users worth importing again, as an importable JSON array
    DIR/duplicated-users.json  users Auth0 refused as DUPLICATED_USER
    DIR/report.json            the run's outcome
    DIR/verify.json            the last verification
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

MANIFEST: Final = "manifest.json"
JOURNAL: Final = "journal.ndjson"
CHUNKS: Final = "chunks"
REJECTS: Final = "rejects.ndjson"
UNMATCHED_HASHES: Final = "unmatched-hashes.ndjson"
ERRORS: Final = "errors"
FAILED_USERS: Final = "failed-users.ndjson"
RETRY: Final = "retry.json"
DUPLICATED_USERS: Final = "duplicated-users.json"
REPORT: Final = "report.json"
VERIFY: Final = "verify.json"


def chunk_file(index: int) -> str:
    """Where chunk `index`'s users file is, relative to the run directory."""
    return f"{CHUNKS}/{index:06d}.json"


def errors_file(run_dir: Path, index: int) -> Path:
    """Where chunk `index`'s per-user errors are stored once its job completed."""
    return run_dir / ERRORS / f"{index:06d}.ndjson"


def has_plan(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run (its manifest)."""
    return (run_dir / MANIFEST).is_file()
