"""Chunk files on disk: written (hashed and flushed) while planning streams on, and checked against
the manifest before they are sent, so a chunk that changed is never sent."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from pathlib import Path
from typing import Final, NoReturn

from orchestrator.errors import RunDirError
from orchestrator.fsutil import make_private_dir, write_private_atomic
from orchestrator.plan.pack import PackedChunk
from orchestrator.plan.planner import ChunkLayout, WrittenChunk, describe_chunk
from orchestrator.rundir.layout import CHUNKS, chunk_file
from orchestrator.rundir.manifest import ChunkRecord, Manifest


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
    start with the first chunk: a plan that writes none starts none.
    """

    #: Threads hashing and writing chunk files.
    WRITERS: Final = 2
    #: Chunks handed over but not yet being written, at most (each up to the request limit).
    WRITES_QUEUED: Final = 8

    def __init__(self, run_dir: Path, layout: ChunkLayout) -> None:
        self._dir = run_dir / CHUNKS
        self._layout = layout
        make_private_dir(self._dir)
        self._writers: list[threading.Thread] = []
        self._to_write: queue.Queue[tuple[int, bytes] | None] = queue.Queue(self.WRITES_QUEUED)
        self._digests: dict[int, str] = {}
        self._error: Exception | None = None
        #: Seconds the planning thread waited on the disk: for room in the queue, and in `sync`.
        self.waited_s = 0.0

    def __call__(self, chunk: PackedChunk) -> WrittenChunk:
        if not self._writers:
            for _ in range(self.WRITERS):
                writer = threading.Thread(
                    target=self._write_all, name="orchestrator-chunk-writer", daemon=True
                )
                writer.start()
                # Listed once started: an interrupt in between leaves nothing for close() to join
                # that never ran.
                self._writers.append(writer)
        started = time.perf_counter()
        self._to_write.put((chunk.index, chunk.body))  # waits only while the queue is full
        self.waited_s += time.perf_counter() - started
        return describe_chunk(chunk, self._layout, chunk_file(chunk.index))

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


def read_chunk(run_dir: Path, chunk: ChunkRecord) -> bytes:
    """The users file the chunk sends next, exactly as recorded; read right before it is sent.

    That is the planned chunk file, or the smaller file of the users a resolution left to send.

    Raises:
        RunDirError: the file is missing or no longer the one the manifest recorded.
    """
    file, sha256, size, _ = chunk.sending()
    path = run_dir / file
    try:
        body = path.read_bytes()
    except OSError as exc:
        _changed(path, f"cannot be read ({exc.strerror or exc})")
    if len(body) != size or hashlib.sha256(body).hexdigest() != sha256:
        _changed(path, "has changed since planning (its sha256 differs from the manifest)")
    return body


def write_resend_file(run_dir: Path, chunk: ChunkRecord, body: bytes) -> tuple[str, str, int]:
    """Store the users of `chunk` left to send after a resolution: DIR/chunks/NNNNNN.rK.json.

    Written 0600 and flushed before the resolution that names it is recorded (and long before it
    is sent). Returns its name (relative to the run dir), sha256 and size.

    Raises:
        RunDirError: it cannot be written.
    """
    rounds = sum(1 for r in chunk.resolutions if r.kind == "unseen_job" and r.file is not None)
    name = f"{CHUNKS}/{chunk.index:06d}.r{rounds + 1}.json"
    try:
        write_private_atomic(run_dir / name, body)
    except OSError as exc:
        raise RunDirError(
            f"cannot write {run_dir / name}: {exc.strerror or exc}; fix that, then "
            f"`orchestrator resume --run-dir {run_dir}`"
        ) from None
    return name, hashlib.sha256(body).hexdigest(), len(body)


def verify_chunk_files(run_dir: Path, manifest: Manifest) -> None:
    """Check that every chunk still to be sent is on disk exactly as planned.

    Sizes are checked for all chunks first (cheap), then contents are hashed.

    Raises:
        RunDirError: naming the first missing or changed chunk file.
    """
    todo = [chunk.sending()[:3] for chunk in manifest.chunks if chunk.status != "completed"]
    for file, _, expected in todo:
        path = run_dir / file
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            _changed(path, "is missing")
        if size != expected:
            _changed(path, f"is {size:,} bytes, the manifest says {expected:,}")
    for file, sha256, _ in todo:
        path = run_dir / file
        if _sha256_of(path) != sha256:
            _changed(path, "has changed since planning (its sha256 differs from the manifest)")


def _changed(path: Path, problem: str) -> NoReturn:
    raise RunDirError(
        f"chunk file {path} {problem}; the run cannot go on safely: re-plan the input into a new "
        "run dir (orchestrator run INPUT --run-dir NEW_DIR ...)"
    )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
