"""A completed job's per-user errors, kept before the service deletes them (24 hours).

Each is written to DIR/errors/NNNNNN.ndjson (0600) as `{chunk, job_id, external_id, user, errors}`
lines, then recorded. When an earlier submission of the chunk had an unknown outcome, a
DUPLICATED_USER failure may be a user that earlier job imported: the tenant is asked, and such a
user is counted imported, not failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread
import orjson

from orchestrator.auth0.answers import JobInfo, UserError
from orchestrator.auth0.client import ApiClient
from orchestrator.errors import ApiError, AuthError, RunDirError
from orchestrator.events import EventSink
from orchestrator.fsutil import utc_now_iso, write_private_atomic
from orchestrator.rundir.layout import errors_file
from orchestrator.rundir.manifest import UNKNOWN_OUTCOMES, ChunkRecord, Resolution
from orchestrator.rundir.tracker import Tracker
from orchestrator.upload.resolve import LookupUnavailable, Resolver

T = TypeVar("T")

#: The only per-user error a job sent after an unseen one can owe to that job.
DUPLICATED = "DUPLICATED_USER"


async def recorded(transition: Callable[..., T], *args: object) -> T:
    """Run a tracker transition: off the event loop (its fsync blocks) and shielded, so that a
    cancelled run still records what it did."""
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(transition, *args)
    return result


class JobErrors:
    """Fetches, checks and keeps the per-user errors of a run's completed jobs."""

    def __init__(
        self,
        run_dir: Path,
        tracker: Tracker,
        client: ApiClient,
        resolver: Resolver,
        events: EventSink,
    ) -> None:
        self._run_dir = run_dir
        self._tracker = tracker
        self._client = client
        self._resolver = resolver
        self._emit = events

    async def save(self, index: int) -> None:
        """Fetch a completed job's per-user errors now: the service deletes them after 24 hours.

        When an earlier submission of the chunk had an unknown outcome, its job may have imported
        users this job then found existing: each DUPLICATED_USER failure is looked up, and a user
        created since the chunk's first submission is counted imported, not failed.
        """
        chunk = self._tracker.chunk(index)
        job_id = chunk.job_id
        assert job_id is not None
        try:
            answer = await self._client.get_job_errors(job_id)
        except AuthError:
            raise
        except ApiError as exc:
            self._emit("errors_unavailable", {"chunk": index, "job_id": job_id, "detail": str(exc)})
            return
        checked = None
        if isinstance(answer, list) and _after_unknown(chunk):
            checked, answer = await self._check_duplicates(chunk, answer)
        lines = error_lines(chunk, job_id, answer)
        path = errors_file(self._run_dir, index)
        try:
            await anyio.to_thread.run_sync(write_private_atomic, path, b"".join(lines))
        except OSError as exc:
            raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None
        await recorded(self._tracker.errors_saved, index, checked)

    async def _check_duplicates(
        self, chunk: ChunkRecord, answer: list[UserError]
    ) -> tuple[Resolution | None, list[UserError]]:
        """The DUPLICATED_USER failures an unseen earlier job of the chunk explains, taken out.

        Returns the check's resolution (None when the tenant could not be asked) and the errors
        that remain.
        """
        candidates = [
            position
            for position, item in enumerate(answer)
            if {str(e.get("code")) for e in item.errors} == {DUPLICATED}
            and isinstance(item.user.get("email"), str)
        ]
        try:
            verdicts, since = await self._resolver.look_up(
                [answer[i].user for i in candidates], chunk.attempts[0].started_at
            )
        except (LookupUnavailable, ApiError) as exc:
            self._emit(
                "duplicates_unchecked",
                {
                    "chunk": chunk.index,
                    "users": len(candidates),
                    "detail": f"{exc}: they may be users an earlier job of this chunk imported",
                },
            )
            return None, answer
        found = {candidates[k] for k, verdict in enumerate(verdicts) if verdict != "missing"}
        if len(found) > (chunk.summary or {}).get("failed", 0):
            return None, answer  # the errors list more users than the job failed: trust neither
        resolution = Resolution(
            kind="duplicates",
            attempt=len(chunk.attempts),
            at=utc_now_iso(),
            since=utc_now_iso(since),
            looked_up=len(candidates),
            found=len(found),
            inserted=len(found),
            updated=0,
            resent=0,
        )
        if found:
            self._emit(
                "resolved",
                {
                    "chunk": chunk.index,
                    "external_id": chunk.external_id,
                    "looked_up": len(candidates),
                    "found": len(found),
                    "resent": 0,
                    "duplicates": True,
                },
            )
        return resolution, [item for i, item in enumerate(answer) if i not in found]


def error_lines(
    chunk: ChunkRecord, job_id: str, answer: list[UserError] | JobInfo | None
) -> list[bytes]:
    """failed-users.ndjson lines for one job: {chunk, job_id, external_id, user, errors}."""
    base = {"chunk": chunk.index, "job_id": job_id, "external_id": chunk.external_id}
    if isinstance(answer, list):
        return [
            orjson.dumps({**base, "user": item.user, "errors": item.errors}) + b"\n"
            for item in answer
        ]
    detail = answer.status_details if isinstance(answer, JobInfo) else None
    # 204 or the generic object: the service kept no per-user detail for this job.
    return [orjson.dumps({**base, "user": None, "errors": [], "detail": detail}) + b"\n"]


def _after_unknown(chunk: ChunkRecord) -> bool:
    """Whether an earlier attempt of the chunk ended without our knowing what it imported."""
    return any(attempt.outcome in UNKNOWN_OUTCOMES for attempt in chunk.attempts[:-1])
