"""The only writer of a run's state: each transition is journaled durably, then applied in memory.

`DIR/journal.ndjson` gets one fsynced line per transition (O(1) in the number of chunks);
`DIR/manifest.json` is rewritten from memory atomically every few seconds and on close. Opening a
run replays the journal, so a run killed at any instant resumes from exactly what it had recorded.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NoReturn, Self

import orjson

from orchestrator.errors import RunDirError
from orchestrator.fsutil import (
    make_private_dir,
    open_private_append,
    utc_now_iso,
    write_private_atomic,
)
from orchestrator.manifest import (
    ACTIVE_STATES,
    ATTEMPT_OUTCOMES,
    Attempt,
    ChunkRecord,
    JsonFields,
    Manifest,
)

MANIFEST = "manifest.json"
JOURNAL = "journal.ndjson"
#: Longest `detail` kept: a job's status_details can be long, and journal lines should stay small.
MAX_DETAIL_CHARS = 1_000

# Why every recorded event is applied exactly once, whenever the process dies:
# 1. A transition is appended to the journal as {"seq": last + 1, ...} and fsynced before its method
#    returns, and callers act on a transition (POST, poll) only after it returned. A crash during
#    the append leaves a torn last line, which replay ignores: that call never returned, so nothing
#    depended on it.
# 2. Compaction writes manifest.json with `journal_seq` = the last seq folded into it (temp file,
#    fsync, rename, fsync of the dir) and only then truncates the journal. A crash before the rename
#    leaves the old manifest and the whole journal; a crash after the rename but before the
#    truncation leaves the new manifest and journal lines whose seq <= journal_seq, which replay
#    skips. Either way no event is lost and none is applied twice.
# 3. Replay demands consecutive seqs after journal_seq, so a journal that lost lines, or belongs to
#    another manifest, is refused rather than applied to the wrong state.
# 4. One process at a time: the journal is flock()ed while a Tracker has it open.

Fail = Callable[[str], NoReturn]
Commit = Callable[[], None]
_FAILURE_OUTCOMES = tuple(outcome for outcome in ATTEMPT_OUTCOMES if outcome != "completed")


class Tracker:
    """Records every chunk transition of one run directory; thread-safe, synchronous.

    Each transition method validates the move (an illegal one is a programming error:
    `RuntimeError`), appends one journal line with write + fsync, then applies it to `manifest`.
    The fsync blocks for a disk round trip: async callers run transitions in a worker thread.
    Build one with `create` (a new plan) or `open` (an existing run); `close` it when done.

    Attributes:
        manifest: the live state. Callers read it; only the tracker changes it.
        run_dir: the run directory.
    """

    def __init__(
        self, run_dir: Path, manifest: Manifest, journal: BinaryIO, compact_interval: float
    ) -> None:
        """Private: use `Tracker.create` or `Tracker.open`."""
        self.run_dir = run_dir
        self.manifest = manifest
        self._manifest_path = run_dir / MANIFEST
        self._journal = journal
        self._fd = journal.fileno()
        self._seq = manifest.journal_seq
        self._compacted_seq = -1
        self._compact_interval = compact_interval
        self._last_compaction = time.monotonic()
        # Re-entrant: a transition checks for a no-op and records under one acquisition.
        self._lock = threading.RLock()
        self._closed = False
        self._broken: str | None = None

    @classmethod
    def create(cls, run_dir: Path, manifest: Manifest, *, compact_interval: float = 2.0) -> Tracker:
        """Start tracking a new plan: write `manifest.json` (0600) and an empty journal.

        Args:
            run_dir: the run directory (created 0700 if missing).
            manifest: the plan; its chunks must be indexed 0..n-1 in order.
            compact_interval: seconds between automatic compactions.

        Raises:
            RunDirError: the directory already holds a run, or is in use, or cannot be written.
            ValueError: `manifest` is not valid (a programming error).
        """
        _check_new_manifest(manifest)
        make_private_dir(run_dir)
        journal = _open_journal(run_dir)
        try:
            if (run_dir / MANIFEST).exists():
                raise RunDirError(
                    f"{run_dir} already holds a run (manifest.json); continue it with "
                    f"`orchestrator resume --run-dir {run_dir}` or choose a new run dir"
                )
            # A journal left by a planning pass that died before writing its manifest is stale.
            os.ftruncate(journal.fileno(), 0)
            tracker = cls(run_dir, manifest, journal, compact_interval)
            tracker._compact_or_raise()
        except BaseException:
            journal.close()
            raise
        return tracker

    @classmethod
    def open(cls, run_dir: Path, *, compact_interval: float = 2.0) -> Tracker:
        """Reopen a run: load `manifest.json`, replay the journal, compact once.

        Raises:
            RunDirError: no run there, a damaged manifest or journal, or another process uses it.
        """
        _require_run(run_dir)
        journal = _open_journal(run_dir)
        try:
            manifest = _load(run_dir)
            tracker = cls(run_dir, manifest, journal, compact_interval)
            tracker._compact_or_raise()
        except BaseException:
            journal.close()
            raise
        return tracker

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"seq={self._seq}"
        return f"<Tracker {self.run_dir} {state} chunks={len(self.manifest.chunks)}>"

    def chunk(self, index: int) -> ChunkRecord:
        """The live record of chunk `index` (IndexError if the plan has no such chunk)."""
        if not 0 <= index < len(self.manifest.chunks):
            raise IndexError(f"the plan has no chunk {index}")
        return self.manifest.chunks[index]

    def submitting(self, index: int) -> Attempt:
        """A planned chunk is about to be POSTed: start a new attempt. Call before the POST."""
        with self._lock:
            chunk = self.chunk(index)
            self._record("submitting", chunk=index, at=utc_now_iso())
            return chunk.attempts[-1]

    def submitted(self, index: int, job_id: str) -> None:
        """The POST created job `job_id`: the chunk is pending. Call before the first poll."""
        with self._lock:
            self.chunk(index)
            self._record("submitted", chunk=index, job_id=job_id)

    def progressed(self, index: int, status: str) -> None:
        """The job reports `status` (pending/processing); writes nothing unless it moved forward."""
        with self._lock:
            current = self.chunk(index).status
            if current in ("pending", "processing") and status in ("pending", current):
                return  # unchanged, or a report going backwards: nothing to record
            self._record("progressed", chunk=index, status=status)

    def completed(self, index: int, summary: dict[str, int]) -> None:
        """The job completed with `summary` ({"total","inserted","updated","failed"} counts)."""
        with self._lock:
            self.chunk(index)
            self._record("completed", chunk=index, summary=dict(summary), at=utc_now_iso())

    def attempt_failed(self, index: int, outcome: str, detail: str | None) -> None:
        """The running attempt ended badly (`outcome`); the chunk goes back to planned.

        Args:
            index: the chunk.
            outcome: failed, expired, timeout, rejected, unknown or lost.
            detail: why, for people (the job's status_details); never secrets.
        """
        with self._lock:
            self.chunk(index)
            self._record(
                "attempt_failed",
                chunk=index,
                outcome=outcome,
                detail=_clip(detail),
                at=utc_now_iso(),
            )

    def chunk_failed(self, index: int, detail: str | None, *, outcome: str | None = None) -> None:
        """Give up on the chunk for this round: status failed, `detail` kept as its `failure`.

        From `planned` (after `attempt_failed`) nothing else changes. From a running attempt, that
        attempt ends with `outcome`, by default "rejected" if no job was created yet
        (submitting) and "failed" otherwise.
        """
        with self._lock:
            status = self.chunk(index).status
            if status in ACTIVE_STATES and outcome is None:
                outcome = "rejected" if status == "submitting" else "failed"
            self._record(
                "chunk_failed",
                chunk=index,
                outcome=outcome,
                detail=_clip(detail),
                at=utc_now_iso(),
            )

    def errors_saved(self, index: int) -> None:
        """The completed job's per-user errors are stored (errors/NNNNNN.ndjson); idempotent."""
        with self._lock:
            chunk = self.chunk(index)
            if chunk.status == "completed" and chunk.errors_saved:
                return
            self._record("errors_saved", chunk=index)

    def ambiguous(self, index: int) -> None:
        """A POST of the chunk may or may not have created a job; it will be submitted again.

        For a chunk found in `submitting` on resume, or a POST whose connection broke after the
        body was sent: the attempt ends "unknown", `ambiguous` += 1, status planned.
        """
        with self._lock:
            self.chunk(index)
            self._record("ambiguous", chunk=index, at=utc_now_iso())

    def withdrawn(self, index: int) -> None:
        """The service refused the POST before creating a job (every job slot was taken).

        The attempt is taken back as if never made: status planned, so a stop while waiting for a
        slot is not mistaken for an ambiguous submission on resume.
        """
        with self._lock:
            self.chunk(index)
            self._record("withdrawn", chunk=index)

    def reset_failed(self) -> int:
        """Make every failed chunk planned again for a new round; returns how many (one line)."""
        with self._lock:
            failed = [chunk.index for chunk in self.manifest.chunks if chunk.status == "failed"]
            if failed:
                self._record("reset_failed", chunks=failed)
            return len(failed)

    def update_settings(
        self,
        *,
        connection_id: str | None = None,
        upsert: bool | None = None,
        send_completion_email: bool | None = None,
        job_slots: int | None = None,
        max_attempts: int | None = None,
    ) -> None:
        """Change the run-time settings (None: keep); the plan's own settings never change."""
        wanted: dict[str, object] = {
            "connection_id": connection_id,
            "upsert": upsert,
            "send_completion_email": send_completion_email,
            "job_slots": job_slots,
            "max_attempts": max_attempts,
        }
        with self._lock:
            settings = self.manifest.settings
            changes = {
                key: value
                for key, value in wanted.items()
                if value is not None and getattr(settings, key) != value
            }
            if changes:
                self._record("settings", changes=changes)

    def compact(self) -> None:
        """Rewrite manifest.json atomically from memory, then empty the journal.

        Raises:
            RunDirError: manifest.json could not be written (the journal still holds everything).
        """
        with self._lock:
            self._check_open()
            self._compact_or_raise()

    def close(self) -> None:
        """Compact (if anything changed) and release the run directory; idempotent.

        Raises:
            RunDirError: the final compaction failed; the journal still holds everything.
        """
        with self._lock:
            if self._closed:
                return
            try:
                if self._seq != self._compacted_seq or self._broken is not None:
                    self._compact_or_raise()
            finally:
                self._closed = True
                self._journal.close()  # also releases the flock

    def _record(self, event: str, **fields: object) -> None:
        """Validate, append durably, apply, maybe compact; the caller holds the lock."""
        self._check_open()
        if self._broken is not None:
            raise RunDirError(self._broken)
        line = {"seq": self._seq + 1, "event": event, **fields}
        # The same code validates here and on replay: whatever is written can be read back.
        commit = _prepare(self.manifest, JsonFields(line, "", _illegal), _illegal)
        self._append(orjson.dumps(line) + b"\n")
        self._seq += 1
        commit()
        if time.monotonic() - self._last_compaction >= self._compact_interval:
            try:
                self._compact()
            except OSError:
                # The journal alone keeps the state durable: retry at the next interval, and let
                # close() report a failure that persists.
                self._last_compaction = time.monotonic()

    def _append(self, data: bytes) -> None:
        try:
            # The journal is unbuffered: os.write hands the bytes to the kernel, nothing to flush.
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError as exc:
            # The journal may now end with a partial line: refuse further appends after it.
            self._broken = (
                f"could not record a transition in {self.run_dir / JOURNAL}: {exc.strerror or exc}; "
                f"fix that, then `orchestrator resume --run-dir {self.run_dir}`"
            )
            raise RunDirError(self._broken) from exc

    def _compact(self) -> None:
        self.manifest.journal_seq = self._seq
        write_private_atomic(self._manifest_path, self.manifest.to_json())
        # Only once the new manifest is durable may the journal go (see the note at the top).
        os.ftruncate(self._fd, 0)
        self._compacted_seq = self._seq
        self._broken = None  # a torn line left by a failed append went with the journal
        self._last_compaction = time.monotonic()

    def _compact_or_raise(self) -> None:
        try:
            self._compact()
        except OSError as exc:
            raise RunDirError(
                f"could not save {self._manifest_path}: {exc.strerror or exc}; its journal still "
                "holds every transition: fix that, then resume"
            ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the tracker of {self.run_dir} is closed")


def load_manifest(run_dir: Path) -> Manifest:
    """Read a run's current state without writing anything (for `status`, even during a run).

    Raises:
        RunDirError: no run there, or a damaged manifest or journal.
    """
    _require_run(run_dir)
    return _load(run_dir)


def _check_new_manifest(manifest: Manifest) -> None:
    try:
        Manifest.from_json(manifest.to_json(), path="the new manifest")
    except RunDirError as exc:
        raise ValueError(str(exc)) from exc


def _require_run(run_dir: Path) -> None:
    if not (run_dir / MANIFEST).is_file():
        raise RunDirError(
            f"{run_dir} holds no run (no {MANIFEST}); check --run-dir, or start a run with "
            "`orchestrator run`"
        )


def _open_journal(run_dir: Path) -> BinaryIO:
    path = run_dir / JOURNAL
    try:
        journal = open_private_append(path, buffering=0)
    except OSError as exc:
        raise RunDirError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        journal.close()
        raise RunDirError(
            f"{run_dir} is in use by another orchestrator process; wait for it to end or stop it"
        ) from None
    return journal


def _load(run_dir: Path) -> Manifest:
    journal_path = run_dir / JOURNAL
    manifest_path = run_dir / MANIFEST
    try:
        # Journal first: if a compaction runs in between, the newer manifest covers every line
        # read, so an unlocked reader still gets a consistent (if slightly older) state.
        journal = journal_path.read_bytes() if journal_path.exists() else b""
        data = manifest_path.read_bytes()
    except OSError as exc:
        raise RunDirError(f"cannot read {run_dir}: {exc.strerror or exc}") from exc
    manifest = Manifest.from_json(data, path=str(manifest_path))
    manifest.journal_seq = _replay(manifest, journal, journal_path)
    return manifest


def _replay(manifest: Manifest, data: bytes, path: Path) -> int:
    """Apply the journal lines newer than the manifest; returns the last seq applied."""
    seq = manifest.journal_seq
    lines = data.split(b"\n")
    # Bytes after the last newline are a line whose append never completed: never applied.
    complete, torn = lines[:-1], lines[-1]
    for number, line in enumerate(complete, start=1):
        fail = _journal_failure(path, number)
        try:
            decoded = orjson.loads(line)
        except orjson.JSONDecodeError:
            if number == len(complete) and not torn:
                break  # a damaged last line (power loss): its call never returned either
            fail("it is not valid JSON")
        event = JsonFields(decoded, "", fail)
        line_seq = event.get_int("seq")
        if line_seq <= manifest.journal_seq:
            continue  # folded into the manifest already (a crash before truncation)
        if line_seq != seq + 1:
            fail(f"it has seq {line_seq} where {seq + 1} was expected: transitions are missing")
        _prepare(manifest, event, fail)()
        seq = line_seq
    return seq


def _journal_failure(path: Path, number: int) -> Fail:
    def fail(problem: str) -> NoReturn:
        raise RunDirError(
            f"{path} line {number} is damaged ({problem}); the run's state cannot be trusted: "
            "start a new run dir (users already imported would be sent again)"
        )

    return fail


def _illegal(problem: str) -> NoReturn:
    raise RuntimeError(f"illegal tracker transition: {problem}")


def _clip(detail: str | None) -> str | None:
    if detail is None or len(detail) <= MAX_DETAIL_CHARS:
        return detail
    return detail[: MAX_DETAIL_CHARS - 1] + "…"


# --- Events: each validates its line against the state and returns the change to make. ---------


def _prepare(manifest: Manifest, event: JsonFields, fail: Fail) -> Commit:
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
    outcome = event.get_choice("outcome", _FAILURE_OUTCOMES)
    detail = event.get_opt_str("detail")
    at = event.get_str("at")

    def commit() -> None:
        _end(chunk.attempts[-1], at, outcome, detail)
        chunk.status = "planned"

    return commit


def _chunk_failed(chunk: ChunkRecord, event: JsonFields) -> Commit:
    outcome = event.get_opt_choice("outcome", _FAILURE_OUTCOMES)
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
