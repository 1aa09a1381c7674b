"""Which of tonight's users Auth0 really took: read from the night's run directory after the upload.

A user is synced only when its chunk's job completed and no error line of that job names it. When a
job reports failures that cannot be tied to users (errors not fetched, or echoed without a key), the
whole chunk counts as not synced: its users are sent again next night, which upsert makes harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from orchestrator.rundir.layout import errors_file
from orchestrator.rundir.manifest import ChunkRecord, Manifest
from orchestrator.sync.diff import user_key
from orchestrator.sync.state import ChunkResult


@dataclass(frozen=True, slots=True)
class NightOutcome:
    """The completed chunks to promote, and what stays unsynced for now.

    Attributes:
        chunks: completed chunks, each with the keys its job failed.
        unfinished_chunks: chunks not completed (failed for good, or never finished).
        untraceable_chunks: completed chunks whose failures could not be tied to users.
        failed_users: users named in the job errors of `chunks`.
    """

    chunks: list[ChunkResult]
    unfinished_chunks: list[int]
    untraceable_chunks: list[int]
    failed_users: int


def night_outcome(run_dir: Path, manifest: Manifest) -> NightOutcome:
    """Read the manifest and the stored job errors of a finished (or stopped) night."""
    chunks: list[ChunkResult] = []
    unfinished: list[int] = []
    untraceable: list[int] = []
    failed_users = 0
    for chunk in manifest.chunks:
        if chunk.status != "completed":
            unfinished.append(chunk.index)
            continue
        failed_keys = _failed_keys(run_dir, chunk)
        if failed_keys is None:
            untraceable.append(chunk.index)
            continue
        failed_users += len(failed_keys)
        chunks.append(
            ChunkResult(
                chunk=chunk.index,
                job_id=chunk.job_id,
                external_id=chunk.external_id,
                completed_at=chunk.attempts[-1].ended_at if chunk.attempts else None,
                first_position=chunk.first_position,
                last_position=chunk.last_position,
                users=chunk.users,
                failed_keys=failed_keys,
            )
        )
    return NightOutcome(chunks, unfinished, untraceable, failed_users)


def _failed_keys(run_dir: Path, chunk: ChunkRecord) -> frozenset[str] | None:
    """Keys of the users the chunk's job failed; None when they cannot all be told."""
    failed = (chunk.summary or {}).get("failed", 0)
    if not failed:
        return frozenset()
    if not chunk.errors_saved:
        return None
    path = errors_file(run_dir, chunk.index)
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return None
    keys: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        user = item.get("user") if isinstance(item, dict) else None
        key = user_key(user) if isinstance(user, dict) else None
        if key is None:
            return None  # a failure we cannot pin on a user: trust none of the chunk
        keys.add(key)
    # Fewer distinct users than the job says failed: some failures went unlisted.
    return frozenset(keys) if len(keys) >= failed else None
