"""The run directory: where a plan's chunk files, its manifest and every result of the run live.

Layout (all files private to the owner; the dir is 0700)::

    DIR/manifest.json        the plan and every chunk's state (compacted from the journal)
    DIR/journal.ndjson       one line per transition since the last compaction
    DIR/chunks/NNNNNN.json   the users file of chunk NNNNNN, sent as is
    DIR/rejects.ndjson       users refused before upload, with their reasons
    DIR/errors/NNNNNN.ndjson per-user errors of chunk NNNNNN's job, fetched when it completed
    DIR/failed-users.ndjson  all per-user errors of the run (assembled by the report)
    DIR/retry.json           failed users worth importing again, as an importable JSON array
    DIR/report.json          the run's outcome
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Final

from orchestrator.chunker import PackedChunk
from orchestrator.errors import RunDirError
from orchestrator.fsutil import make_private_dir, utc_now_iso, write_private_atomic
from orchestrator.manifest import (
    MANIFEST_VERSION,
    ChunkRecord,
    InputInfo,
    Manifest,
    PlanSettings,
    PlanTotals,
)
from orchestrator.planner import PlanOptions, PlanStats, WrittenChunk, describe_chunk, plan_export
from orchestrator.reader import ExportReader, input_fingerprint
from orchestrator.tracker import Tracker

MANIFEST = "manifest.json"
CHUNKS = "chunks"
REJECTS = "rejects.ndjson"
ERRORS = "errors"
FAILED_USERS = "failed-users.ndjson"
RETRY = "retry.json"
REPORT = "report.json"


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def default_external_id_prefix() -> str:
    """A fixed-length prefix unique to this plan (fixed length keeps chunk files reproducible)."""
    return "orch-" + secrets.token_hex(4)


def errors_file(run_dir: Path, index: int) -> Path:
    """Where chunk `index`'s per-user errors are stored once its job completed."""
    return run_dir / ERRORS / f"{index:06d}.ndjson"


def has_plan(run_dir: Path) -> bool:
    return (run_dir / MANIFEST).is_file()


class ChunkWriter:
    """Stores each packed chunk as DIR/chunks/NNNNNN.json (0600) while planning streams on.

    Background threads hash each file (its sha256, for the manifest), write it and flush it to
    disk (fsync), so that work overlaps planning instead of following it or stalling it. Hashing
    and writing release the interpreter lock, and the planning thread bounds planning's speed:
    what leaves it runs beside it. Flushing 110 MB one file after another at the end took ~0.75 s
    here, and creating files while flushes run can block for a journal commit. WRITERS threads,
    because concurrent flushes share journal commits: two wrote ~1.6x as many files a second as
    one, and with one the planning of a 1.1 GB export waited ~2.7 s for room in the queue.
    `sync` waits for the last ones. At most WRITES_QUEUED chunks wait in memory. The threads
    start with the first chunk, after any planning worker has forked (a fork must not copy a
    process with other threads).
    """

    #: Threads hashing and writing chunk files.
    WRITERS: Final = 2
    #: Chunks handed over but not yet being written, at most (each up to the request limit).
    WRITES_QUEUED: Final = 8

    def __init__(self, run_dir: Path) -> None:
        self._dir = run_dir / CHUNKS
        make_private_dir(self._dir)
        self._writers: list[threading.Thread] = []
        self._to_write: queue.Queue[tuple[int, bytes] | None] = queue.Queue(self.WRITES_QUEUED)
        self._digests: dict[int, str] = {}
        self._error: Exception | None = None
        #: Seconds the planning thread waited on the disk: for room in the queue, and in `sync`.
        self.waited_s = 0.0

    def __call__(self, chunk: PackedChunk, external_id: str) -> WrittenChunk:
        relative = f"{CHUNKS}/{chunk.index:06d}.json"
        if not self._writers:
            self._writers = [
                threading.Thread(
                    target=self._write_all, name="orchestrator-chunk-writer", daemon=True
                )
                for _ in range(self.WRITERS)
            ]
            for writer in self._writers:
                writer.start()
        started = time.perf_counter()
        self._to_write.put((chunk.index, chunk.body))  # waits only while the queue is full
        self.waited_s += time.perf_counter() - started
        return describe_chunk(chunk, external_id, relative)

    def sync(self) -> dict[int, str]:
        """Make every chunk durable before the manifest that names them is written.

        Returns:
            Each chunk's sha256 (hex), by index.

        Raises:
            RunDirError: a chunk file could not be written or flushed (e.g. the disk is full).
        """
        started = time.perf_counter()
        self.close()
        self.waited_s += time.perf_counter() - started
        if self._error is not None:
            raise self._error
        return self._digests

    def close(self) -> None:
        """Wait for the chunks handed over so far and stop the writing threads."""
        for _ in self._writers:
            self._to_write.put(None)
        for writer in self._writers:
            writer.join()
        self._writers = []

    def _write_all(self) -> None:
        while (item := self._to_write.get()) is not None:
            if self._error is not None:
                continue  # the first error is what sync() reports
            index, body = item
            self._digests[index] = hashlib.sha256(body).hexdigest()
            path = self._dir / f"{index:06d}.json"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    view = memoryview(body)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self._error = self._error or RunDirError(
                    f"cannot write the chunk file {path}: {exc.strerror or exc}; "
                    "free some disk space or choose another --run-dir, then plan again"
                )
            except Exception as exc:  # noqa: BLE001 (kept for sync(); the loop must keep draining)
                self._error = self._error or exc


def create_plan(
    source: str, run_dir: Path, options: PlanOptions, settings: PlanSettings
) -> tuple[Tracker, PlanStats]:
    """Plan `source` into a new run directory and return its tracker.

    A directory left by a planning pass that died before its manifest was written is planned again.
    """
    if has_plan(run_dir):
        raise RunDirError(
            f"{run_dir} already holds a plan; use `orchestrator run` or `resume` to continue it, "
            "or choose a new --run-dir"
        )
    make_private_dir(run_dir)
    shutil.rmtree(run_dir / CHUNKS, ignore_errors=True)
    reader = ExportReader(source)
    writer = ChunkWriter(run_dir)
    rejects_path = run_dir / REJECTS
    fd = os.open(rejects_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as rejects:
            stats = plan_export(reader, options, store_chunk=writer, rejects=rejects)
        digests = writer.sync()
    finally:
        writer.close()
    stats.disk_wait_s = writer.waited_s
    manifest = Manifest(
        version=MANIFEST_VERSION,
        run_id=new_run_id(),
        created_at=utc_now_iso(),
        input=InputInfo(
            path=source if source == "-" else str(Path(source).resolve()),
            bytes=reader.bytes_read,
            sha256=reader.sha256,
            format=reader.format,
            compressed=reader.compressed,
        ),
        settings=settings,
        totals=PlanTotals(
            users_read=stats.users_read,
            users_accepted=stats.users_accepted,
            users_rejected=stats.users_rejected,
            rejected_by_reason=dict(stats.rejected_by_reason),
            dropped_fields=dict(stats.dropped_fields),
            chunks=len(stats.chunks),
            chunk_bytes=stats.chunk_bytes,
            mean_fill=round(stats.mean_fill(options.max_request_bytes), 4),
        ),
        chunks=[
            ChunkRecord(
                index=c.index,
                file=c.file,
                sha256=digests[c.index],
                bytes=c.bytes,
                users=c.users,
                first_position=c.first_position,
                last_position=c.last_position,
                external_id=c.external_id,
            )
            for c in stats.chunks
        ],
    )
    return Tracker.create(run_dir, manifest), stats


def same_input(manifest: Manifest, source: str) -> bool:
    """Whether `source` is the very export the plan was made from (size and sha256)."""
    if source == "-":
        return False
    size, digest = input_fingerprint(source)
    return size == manifest.input.bytes and digest == manifest.input.sha256


def write_report_file(run_dir: Path, data: bytes) -> None:
    write_private_atomic(run_dir / REPORT, data)
