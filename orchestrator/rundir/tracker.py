"""The only writer of a run's state: each transition is journaled durably, then applied in memory.

`DIR/journal.ndjson` gets one fsynced line per transition (O(1) in the number of chunks);
`DIR/manifest.json` is rewritten from memory atomically every few seconds and on close. Opening a
run replays the journal, so a run killed at any instant resumes from exactly what it had recorded.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NoReturn, Self

import orjson

from orchestrator.errors import RunDirError
from orchestrator.fsutil import (
    utc_now_iso,
    write_private_atomic,
)
from orchestrator.rundir.claim import claim_existing, require_run
from orchestrator.rundir.jsonfields import JsonFields
from orchestrator.rundir.layout import JOURNAL, MANIFEST
from orchestrator.rundir.manifest import (
    ACTIVE_STATES,
    Attempt,
    ChunkRecord,
    Manifest,
    Resolution,
)
from orchestrator.rundir.transitions import Fail, prepare

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
    def create(
        cls, run_dir: Path, manifest: Manifest, journal: BinaryIO, *, compact_interval: float = 2.0
    ) -> Tracker:
        """Start tracking a new plan: write `manifest.json` (0600) and an empty journal.

        Args:
            run_dir: the run directory, claimed for a new plan (`claim.claim_new`).
            manifest: the plan; its chunks must be indexed 0..n-1 in order.
            journal: the run directory's locked journal, which the tracker now owns.
            compact_interval: seconds between automatic compactions.

        Raises:
            RunDirError: the manifest cannot be written.
            ValueError: `manifest` is not valid (a programming error).
        """
        try:
            _check_new_manifest(manifest)
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
        journal = claim_existing(run_dir)
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

    def errors_saved(self, index: int, checked: Resolution | None = None) -> None:
        """The completed job's per-user errors are stored (errors/NNNNNN.ndjson); idempotent.

        Args:
            index: the chunk.
            checked: for a job sent after an unknown outcome, what the tenant said of its
                DUPLICATED_USER failures (a "duplicates" resolution): the users it `found` are
                counted inserted instead of failed, and the stored errors no longer list them.
        """
        with self._lock:
            chunk = self.chunk(index)
            if chunk.status == "completed" and chunk.errors_saved:
                return
            if checked is None:
                self._record("errors_saved", chunk=index)
            else:
                self._record("errors_saved", chunk=index, resolution=dataclasses.asdict(checked))

    def resolved(self, index: int, resolution: Resolution) -> None:
        """The tenant settled the chunk's unknown last attempt (an "unseen_job" resolution).

        Call before sending any of its users again: a `file` it names is already on disk. With
        nothing left to send (`resent` 0) the chunk is completed.
        """
        with self._lock:
            self.chunk(index)
            self._record("resolved", chunk=index, resolution=dataclasses.asdict(resolution))

    def record_tenant(self, audience: str, base_url: str) -> None:
        """The tenant the run sends to (a run sends to one tenant; its base URL may change)."""
        with self._lock:
            tenant = self.manifest.tenant
            if tenant is not None and (tenant.audience, tenant.base_url) == (audience, base_url):
                return
            self._record("tenant", audience=audience, base_url=base_url)

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
        commit = prepare(self.manifest, JsonFields(line, "", _illegal), _illegal)
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
    require_run(run_dir)
    return _load(run_dir)


def _check_new_manifest(manifest: Manifest) -> None:
    try:
        Manifest.from_json(manifest.to_json(), path="the new manifest")
    except RunDirError as exc:
        raise ValueError(str(exc)) from exc


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
        prepare(manifest, event, fail)()
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
