"""The journal's vocabulary: each transition's line is checked against the state and applied.

The same code validates a transition when the tracker records it and when a journal is replayed, so
whatever is written can be read back. Owns the legal moves between chunk states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from orchestrator.rundir.jsonfields import JsonFields
from orchestrator.rundir.manifest import (
    ACTIVE_STATES,
    ATTEMPT_OUTCOMES,
    Attempt,
    ChunkRecord,
    Manifest,
    TenantRecord,
    read_resolution,
)

Fail = Callable[[str], NoReturn]
Commit = Callable[[], None]
FAILURE_OUTCOMES = tuple(outcome for outcome in ATTEMPT_OUTCOMES if outcome != "completed")


def prepare(manifest: Manifest, event: JsonFields, fail: Fail) -> Commit:
    """Check `event` against `manifest` (problems go to `fail`); return the mutation it makes."""
    name = event.get_str("event")
    if name == "reset_failed":
        return _reset_failed(manifest, event, fail)
    if name == "settings":
        return _settings(manifest, event.get_object("changes"))
    if name == "tenant":
        return _tenant(manifest, event)
    if name not in _CHUNK_EVENTS:
        event.fail("event", f"is {name!r}, not a known event")
    allowed, prepare = _CHUNK_EVENTS[name]
    index = event.get_int("chunk")
    if index >= len(manifest.chunks):
        event.fail("chunk", f"is {index}, but the plan has {len(manifest.chunks)} chunks")
    chunk = manifest.chunks[index]
    if chunk.status not in allowed:
        fail(
            f"chunk {index} is {chunk.status}: '{name}' is allowed only from "
            f"{', '.join(sorted(allowed))}"
        )
    return prepare(chunk, event)


def _end(attempt: Attempt, at: str, outcome: str, detail: str | None) -> None:
    attempt.ended_at = at
    attempt.outcome = outcome
    attempt.detail = detail


def _submitting(chunk: ChunkRecord, event: JsonFields) -> Commit:
    at = event.get_str("at")

    def commit() -> None:
        chunk.status = "submitting"
        chunk.job_id = None
        chunk.failure = None
        chunk.attempts.append(Attempt(number=len(chunk.attempts) + 1, started_at=at))

    return commit


def _submitted(chunk: ChunkRecord, event: JsonFields) -> Commit:
    job_id = event.get_str("job_id")

    def commit() -> None:
        chunk.status = "pending"
        chunk.job_id = job_id
        chunk.attempts[-1].job_id = job_id

    return commit


def _progressed(chunk: ChunkRecord, event: JsonFields) -> Commit:
    status = event.get_choice("status", ("pending", "processing"))

    def commit() -> None:
        chunk.status = status

    return commit


def _completed(chunk: ChunkRecord, event: JsonFields) -> Commit:
    summary = event.get_counts("summary")
    at = event.get_str("at")

    def commit() -> None:
        _end(chunk.attempts[-1], at, "completed", None)
        chunk.status = "completed"
        chunk.summary = _with_unseen(chunk, summary)

    return commit


def _with_unseen(chunk: ChunkRecord, summary: dict[str, int]) -> dict[str, int]:
    """The chunk's counts: the job's own (`summary`, for the users it was sent) plus the users that
    unseen jobs of earlier attempts imported, as resolutions found them."""
    inserted, updated = chunk.imported_unseen()
    if not inserted and not updated:
        return summary
    total = dict(summary)
    total["total"] = total.get("total", 0) + inserted + updated
    total["inserted"] = total.get("inserted", 0) + inserted
    total["updated"] = total.get("updated", 0) + updated
    return total


def _attempt_failed(chunk: ChunkRecord, event: JsonFields) -> Commit:
    outcome = event.get_choice("outcome", FAILURE_OUTCOMES)
    detail = event.get_opt_str("detail")
    at = event.get_str("at")

    def commit() -> None:
        _end(chunk.attempts[-1], at, outcome, detail)
        chunk.status = "planned"

    return commit


def _chunk_failed(chunk: ChunkRecord, event: JsonFields) -> Commit:
    outcome = event.get_opt_choice("outcome", FAILURE_OUTCOMES)
    detail = event.get_opt_str("detail")
    at = event.get_str("at")
    running = chunk.status in ACTIVE_STATES
    if running and outcome is None:
        event.fail("outcome", "is missing: the chunk has a running attempt to end")
    if not running and outcome is not None:
        event.fail("outcome", f"is {outcome!r}, but the chunk has no running attempt")

    def commit() -> None:
        if outcome is not None:
            _end(chunk.attempts[-1], at, outcome, detail)
        chunk.status = "failed"
        chunk.failure = detail

    return commit


def _errors_saved(chunk: ChunkRecord, event: JsonFields) -> Commit:
    # A job sent after an unknown outcome: its DUPLICATED_USER failures were checked in the tenant
    # (absent from journals written before resolutions existed).
    checked = (
        read_resolution(event.get_object("resolution")) if event.present("resolution") else None
    )
    if checked is not None:
        failed = (chunk.summary or {}).get("failed", 0)
        if checked.kind != "duplicates" or checked.attempt != len(chunk.attempts):
            event.fail("resolution", "does not check the failures of the chunk's last job")
        if checked.found > failed:
            event.fail("resolution", f"clears {checked.found} failures of a job that had {failed}")
        if any(r.kind == "duplicates" and r.attempt == checked.attempt for r in chunk.resolutions):
            event.fail("resolution", "checks a job whose failures were checked already")

    def commit() -> None:
        chunk.errors_saved = True
        if checked is not None:
            chunk.resolutions.append(checked)
            if checked.found and chunk.summary is not None:
                summary = dict(chunk.summary)
                summary["failed"] = summary.get("failed", 0) - checked.found
                summary["inserted"] = summary.get("inserted", 0) + checked.found
                chunk.summary = summary

    return commit


def _resolved(chunk: ChunkRecord, event: JsonFields) -> Commit:
    resolution = read_resolution(event.get_object("resolution"))
    if not chunk.needs_resolution():
        event.fail("resolution", "settles no unknown outcome: the chunk's last attempt is known")
    last = chunk.attempts[-1]
    if resolution.kind != "unseen_job" or resolution.attempt != last.number:
        event.fail("resolution", f"does not settle the chunk's last attempt ({last.number})")
    users = chunk.sending()[3]
    if resolution.found + resolution.resent != users:
        event.fail("resolution", f"does not account for the {users} users the attempt sent")
    if resolution.file is None and resolution.resent not in (0, users):
        event.fail("resolution", "sends some of the users again without a file of their own")

    def commit() -> None:
        chunk.resolutions.append(resolution)
        if resolution.resent == 0:
            # Every user the attempt sent is in the tenant: the chunk is done, with no job seen.
            chunk.status = "completed"
            chunk.summary = _with_unseen(
                chunk, {"total": 0, "inserted": 0, "updated": 0, "failed": 0}
            )

    return commit


def _ambiguous(chunk: ChunkRecord, event: JsonFields) -> Commit:
    at = event.get_str("at")

    def commit() -> None:
        _end(chunk.attempts[-1], at, "unknown", None)
        chunk.ambiguous += 1
        chunk.status = "planned"

    return commit


def _withdrawn(chunk: ChunkRecord, event: JsonFields) -> Commit:
    def commit() -> None:
        chunk.attempts.pop()
        chunk.status = "planned"

    return commit


_CHUNK_EVENTS: dict[str, tuple[frozenset[str], Callable[[ChunkRecord, JsonFields], Commit]]] = {
    "submitting": (frozenset({"planned"}), _submitting),
    "submitted": (frozenset({"submitting"}), _submitted),
    "progressed": (frozenset({"pending", "processing"}), _progressed),
    "completed": (frozenset({"pending", "processing"}), _completed),
    "attempt_failed": (ACTIVE_STATES, _attempt_failed),
    "chunk_failed": (ACTIVE_STATES | {"planned"}, _chunk_failed),
    "errors_saved": (frozenset({"completed"}), _errors_saved),
    "ambiguous": (frozenset({"submitting"}), _ambiguous),
    "withdrawn": (frozenset({"submitting"}), _withdrawn),
    "resolved": (frozenset({"planned"}), _resolved),
}


def _reset_failed(manifest: Manifest, event: JsonFields, fail: Fail) -> Commit:
    indices = event.get_int_list("chunks")
    count = len(manifest.chunks)
    for index in indices:
        if not 0 <= index < count or manifest.chunks[index].status != "failed":
            fail(f"'reset_failed' names chunk {index}, which is not a failed chunk of the plan")

    def commit() -> None:
        for index in indices:
            manifest.chunks[index].status = "planned"
            manifest.chunks[index].failure = None

    return commit


def _tenant(manifest: Manifest, event: JsonFields) -> Commit:
    tenant = TenantRecord(audience=event.get_str("audience"), base_url=event.get_str("base_url"))
    recorded = manifest.tenant
    if recorded is not None and recorded.audience != tenant.audience:
        event.fail(
            "audience", f"is {tenant.audience!r}, but the run sends to {recorded.audience!r}"
        )

    def commit() -> None:
        manifest.tenant = tenant

    return commit


_SETTING_READERS: dict[str, Callable[[JsonFields, str], object]] = {
    "connection_id": JsonFields.get_str,
    "upsert": JsonFields.get_bool,
    "send_completion_email": JsonFields.get_bool,
    "job_slots": lambda fields, key: fields.get_int(key, minimum=0),  # 0 = auto
    "max_attempts": lambda fields, key: fields.get_int(key, minimum=1),
}


def _settings(manifest: Manifest, changes: JsonFields) -> Commit:
    values: dict[str, object] = {}
    for key in changes.names():
        if key not in _SETTING_READERS:
            changes.fail(key, "is not a setting that may change during a run")
        values[key] = _SETTING_READERS[key](changes, key)

    def commit() -> None:
        for key, value in values.items():
            setattr(manifest.settings, key, value)

    return commit
