"""The outcome of a run, from its manifest and stored errors: report.json, failed users, retry file.

Everything here is derived from files in the run directory, so `report` can rebuild it at any time and
a resumed run reports the whole run, not just its last part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import orjson

from orchestrator.fsutil import write_private_atomic
from orchestrator.outcomes import Outcome
from orchestrator.rundir.layout import (
    DUPLICATED_USERS,
    FAILED_USERS,
    REPORT,
    RETRY,
    errors_file,
)
from orchestrator.rundir.manifest import UNKNOWN_OUTCOMES, ChunkRecord, Manifest

#: Per-user error codes that a second import cannot fix by itself (the user exists already).
NOT_RETRYABLE = frozenset({"DUPLICATED_USER"})


def _parse_time(value: str | None) -> datetime | None:
    """An attempt's time, or None if it has none (or a hand-edited one that is not a time)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def assemble_failed_users(run_dir: Path, manifest: Manifest) -> tuple[Counter[str], int, int, int]:
    """Join every chunk's stored errors into failed-users.ndjson, retry.json, duplicated-users.json.

    The service echoes failed users with their password hashes masked, so the retry files take each
    user from our own chunk file instead: they can be fed to a new `run` as they are.
    Returns (failed users by error code, users listed, retryable users, duplicated users).
    """
    by_code: Counter[str] = Counter()
    lines: list[bytes] = []
    retry: list[object] = []
    duplicated: list[object] = []
    for chunk in manifest.chunks:
        path = errors_file(run_dir, chunk.index)
        if not path.is_file():
            continue
        originals = _users_by_key(run_dir / chunk.file)
        for raw in path.read_bytes().splitlines():
            if not raw.strip():
                continue
            item = orjson.loads(raw)
            lines.append(raw + b"\n")
            codes = {str(e.get("code", "UNKNOWN")) for e in item.get("errors") or []}
            by_code.update(codes or {"JOB_FAILED_WITHOUT_DETAIL"})
            echoed = item.get("user")
            if not isinstance(echoed, dict):
                continue
            user = originals.get(_key(echoed), echoed)
            (duplicated if codes & NOT_RETRYABLE else retry).append(user)
    write_private_atomic(run_dir / FAILED_USERS, b"".join(lines))
    write_private_atomic(run_dir / RETRY, orjson.dumps(retry, option=orjson.OPT_INDENT_2))
    write_private_atomic(
        run_dir / DUPLICATED_USERS, orjson.dumps(duplicated, option=orjson.OPT_INDENT_2)
    )
    return by_code, len(lines), len(retry), len(duplicated)


def _key(user: dict[str, object]) -> str:
    """How a failed user is matched to its original: email (lower-cased), else user_id."""
    email = user.get("email")
    return f"email:{str(email).lower()}" if email else f"user_id:{user.get('user_id')}"


def _users_by_key(chunk_file: Path) -> dict[str, object]:
    try:
        users = orjson.loads(chunk_file.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}  # the chunk file is gone: fall back to the service's (masked) echo
    return {_key(user): user for user in users if isinstance(user, dict)}


def job_totals(chunks: Iterable[ChunkRecord]) -> dict[str, int]:
    """Users inserted, updated and failed by the jobs of these chunks.

    A completed chunk's summary counts every user of it, those that jobs we never saw imported
    included; for an unfinished one, those are counted from its resolutions.
    """
    totals = {"inserted": 0, "updated": 0, "failed": 0}
    for chunk in chunks:
        if chunk.summary:
            for key in totals:
                totals[key] += chunk.summary.get(key, 0)
        elif chunk.status != "completed":
            inserted, updated = chunk.imported_unseen()
            totals["inserted"] += inserted
            totals["updated"] += updated
    return totals


def unknown_outcomes(run_dir: Path, manifest: Manifest) -> list[dict[str, object]]:
    """What is still unknown of the run's users, chunk by chunk, and why (one line each).

    A chunk whose last submission's outcome is unknown and that the tenant could not settle (no
    read:users) is never sent again blindly; a job sent after an unknown outcome whose
    DUPLICATED_USER failures could not be checked may have failed users an unseen job imported.
    """
    unknown: list[dict[str, object]] = []
    for chunk in manifest.chunks:
        users = chunk.sending()[3]
        if chunk.needs_resolution():
            last = chunk.attempts[-1]
            if last.outcome == "lost":
                why = f"its job {last.job_id} was not found (deleted after the service's 24 hours)"
            else:
                why = "its submission was cut off before the service answered"
            detail = f"{why}: whether its {users:,} users were imported is unknown"
        elif _duplicates_unchecked(chunk):
            failed = (chunk.summary or {}).get("failed", 0)
            detail = (
                f"its {failed:,} failed users may include users an earlier submission imported "
                f"(its answer was lost): check those of {run_dir}/duplicated-users.json"
            )
        else:
            continue
        unknown.append(
            {
                "chunk": chunk.index,
                "external_id": chunk.external_id,
                "users": users,
                "detail": detail,
            }
        )
    return unknown


def _duplicates_unchecked(chunk: ChunkRecord) -> bool:
    if chunk.status != "completed" or not (chunk.summary or {}).get("failed"):
        return False
    if not chunk.errors_saved or not any(
        a.outcome in UNKNOWN_OUTCOMES for a in chunk.attempts[:-1]
    ):
        return False
    last = len(chunk.attempts)
    return not any(r.kind == "duplicates" and r.attempt == last for r in chunk.resolutions)


def ambiguous_resubmissions(manifest: Manifest) -> int:
    """Times users were sent again after a submission whose outcome was unknown.

    Since unknown outcomes are resolved, only the users the tenant did not have are sent again,
    so a resubmission no longer imports anyone twice; a run directory written before that counts
    each of its unknown outcomes followed by another submission.
    """
    count = 0
    for chunk in manifest.chunks:
        for attempt in chunk.attempts[:-1]:
            if attempt.outcome not in UNKNOWN_OUTCOMES:
                continue
            settled = [
                r
                for r in chunk.resolutions
                if r.kind == "unseen_job" and r.attempt == attempt.number
            ]
            count += 1 if not settled or settled[0].resent else 0
    return count


def build_report(run_dir: Path, manifest: Manifest) -> dict[str, object]:
    """The run's report as a JSON-ready dict; also rewrites failed-users.ndjson and retry.json."""
    chunks_by_status = Counter(chunk.status for chunk in manifest.chunks)
    totals_by_job = job_totals(manifest.chunks)
    inserted, updated, failed = (totals_by_job[k] for k in ("inserted", "updated", "failed"))
    failed_by_code, _, retryable, duplicated = assemble_failed_users(run_dir, manifest)
    attempts = [a for chunk in manifest.chunks for a in chunk.attempts]
    starts = [t for a in attempts if (t := _parse_time(a.started_at))]
    ends = [t for a in attempts if (t := _parse_time(a.ended_at))]
    duration = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    imported = inserted + updated
    totals = manifest.totals
    unknown = unknown_outcomes(run_dir, manifest)
    unsettled = {item["chunk"] for item in unknown}
    unfinished = [
        c.index for c in manifest.chunks if c.status != "completed" and c.index not in unsettled
    ]
    return {
        "run_id": manifest.run_id,
        "run_dir": str(run_dir),
        "input": manifest.input.path,
        "connection_id": manifest.settings.connection_id,
        "users_read": totals.users_read,
        "rejected_locally": totals.users_rejected,
        "rejected_by_reason": totals.rejected_by_reason,
        "dropped_fields": totals.dropped_fields,
        "chunks": len(manifest.chunks),
        "chunks_by_status": dict(chunks_by_status),
        "unfinished_chunks": unfinished,
        "jobs": sum(1 for a in attempts if a.job_id),
        "users_in_failed_chunks": sum(c.users for c in manifest.chunks if c.status == "failed"),
        "inserted": inserted,
        "updated": updated,
        "failed": failed,
        "failed_by_code": dict(failed_by_code),
        "retryable_users": retryable,
        "duplicated_users": duplicated,
        "ambiguous_resubmissions": ambiguous_resubmissions(manifest),
        "ambiguous_chunks": [
            {"chunk": c.index, "external_id": c.external_id, "resubmissions": c.ambiguous}
            for c in manifest.chunks
            if c.ambiguous
        ],
        "resolutions": [
            {
                "chunk": c.index,
                "external_id": c.external_id,
                "kind": r.kind,
                "attempt": r.attempt,
                "looked_up": r.looked_up,
                "found": r.found,
                "resent": r.resent,
            }
            for c in manifest.chunks
            for r in c.resolutions
        ],
        "unknown": unknown,
        "duration_seconds": round(duration, 3),
        "users_per_hour": round(imported * 3600 / duration) if duration > 0 else None,
        "next_step": _next_step(
            run_dir, unfinished, unknown, any(c.needs_resolution() for c in manifest.chunks)
        ),
    }


def _next_step(
    run_dir: Path, unfinished: list[int], unknown: list[dict[str, object]], unresolved: bool
) -> str | None:
    resume = f"orchestrator resume --run-dir {run_dir}"
    if unfinished:
        return resume
    if unresolved:
        return (
            f"{resume} (with the read:users scope granted to the application: Auth0 dashboard, "
            "APIs > Auth0 Management API > Machine to Machine Applications) looks those users "
            "up in the tenant and sends only the ones it does not have"
        )
    if unknown:
        return (
            f"look the users of {run_dir}/duplicated-users.json up in the tenant: those created "
            "by this run are imported, the others already existed"
        )
    return None


def report_outcome(report: dict[str, object]) -> Outcome:
    """OK all imported; USERS_FAILED finished with rejected or failed users, or users whose import
    is unknown (the report's `next_step` says how to settle them); UNFINISHED chunks left."""
    if report["unfinished_chunks"]:
        return Outcome.UNFINISHED
    if report["rejected_locally"] or report["failed"] or report.get("unknown"):
        return Outcome.USERS_FAILED
    return Outcome.OK


def write_report(run_dir: Path, report: dict[str, object]) -> None:
    write_private_atomic(run_dir / REPORT, orjson.dumps(report, option=orjson.OPT_INDENT_2))
