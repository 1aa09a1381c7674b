"""The journal's vocabulary: each transition's line is checked against the state and applied.

The same code validates a transition when the tracker records it and when a journal is replayed, so
whatever is written can be read back. Owns the legal moves between chunk states.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from orchestrator.rundir.manifest import (
    ACTIVE_STATES,
    ATTEMPT_OUTCOMES,
    Attempt,
    ChunkRecord,
    JsonFields,
    Manifest,
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
        chunk.summary = summary

    return commit


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
    def commit() -> None:
        chunk.errors_saved = True

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
