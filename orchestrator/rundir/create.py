"""A new plan in a run directory: planner -> chunk files -> manifest, in that order.

The directory is claimed (ours or refused) and locked before anything in it is written; chunk
files are durable before the manifest that names them, and the manifest is written last.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import RunDirError
from orchestrator.fsutil import PRIVATE_FILE_MODE, utc_now_iso
from orchestrator.plan.planner import ChunkLayout, PlanStats, plan_chunks
from orchestrator.rundir.chunkfiles import ChunkWriter
from orchestrator.rundir.claim import claim_new
from orchestrator.rundir.layout import CHUNKS, JOURNAL, MANIFEST, REJECTS, UNMATCHED_HASHES
from orchestrator.rundir.manifest import (
    MANIFEST_VERSION,
    ChunkRecord,
    InputInfo,
    Manifest,
    PlanTotals,
    RunSettings,
)
from orchestrator.rundir.tracker import Tracker
from orchestrator.settings import PlanSettings, UploadSettings
from orchestrator.sources.formats import Export
from orchestrator.sources.reader import estimate_users, input_fingerprint


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def default_external_id_prefix() -> str:
    """A fixed-length prefix unique to this plan (fixed length keeps chunk files reproducible)."""
    return "orch-" + secrets.token_hex(4)


def layout_of(settings: PlanSettings) -> ChunkLayout:
    """The chunk layout a plan with these settings gets (a random external_id prefix if none)."""
    prefix = settings.external_id_prefix or default_external_id_prefix()
    return ChunkLayout(settings.max_request_bytes, prefix)


def create_plan(
    source: str,
    run_dir: Path,
    settings: PlanSettings,
    upload: UploadSettings | None = None,
    *,
    claimed: BinaryIO | None = None,
) -> tuple[Tracker, PlanStats]:
    """Plan `source` into a new run directory and return its tracker (which holds the lock).

    A directory left by a planning pass that died before its manifest was written is planned again.

    Args:
        source: the export's path, or ``-`` for stdin.
        run_dir: the new run directory: missing, empty, or an unfinished plan of ours.
        settings: the plan's settings.
        upload: the upload settings recorded with it (`run`); None for `chunk`.
        claimed: the run directory's locked journal, when the caller claimed it already (a sync
            night writes its own files there first).

    Raises:
        RunDirError: the directory is unusable or in use, a file cannot be written, or the export
            is one of the files planning rewrites.
        InputError: the export is malformed (nothing of the plan is kept).
    """
    refuse_input_in_the_way(source, run_dir)
    export = Export(source, settings.source)
    reader = export.reader
    journal = claimed if claimed is not None else claim_new(run_dir)
    try:
        shutil.rmtree(run_dir / CHUNKS, ignore_errors=True)  # an unfinished plan of ours
        layout = layout_of(settings)
        stats, digests = _write_plan(export, run_dir, settings, layout)
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
            settings=RunSettings.of(settings, layout.external_id_prefix, upload),
            totals=PlanTotals(
                users_read=stats.users_read,
                users_accepted=stats.users_accepted,
                users_rejected=stats.users_rejected,
                rejected_by_reason=dict(stats.rejected_by_reason),
                dropped_fields=dict(stats.dropped_fields),
                skipped_by_reason=dict(stats.skipped_by_reason),
                credentials=dict(stats.credentials),
                chunks=len(stats.chunks),
                chunk_bytes=stats.chunk_bytes,
                mean_fill=round(stats.mean_fill(settings.max_request_bytes), 4),
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
    except BaseException:
        journal.close()
        raise
    return Tracker.create(run_dir, manifest, journal), stats


def refuse_input_in_the_way(source: str, run_dir: Path) -> None:
    """The export must not be a file that planning into `run_dir` deletes or rewrites.

    Raises:
        RunDirError: it is a chunk file, the rejects, the manifest or the journal of `run_dir`.
    """
    if source == "-":
        return
    given = Path(source)
    try:
        inside_chunks = given.resolve().is_relative_to((run_dir / CHUNKS).resolve())
    except OSError:
        return  # unreadable paths are reported by the reader, with their reason
    rewritten = [run_dir / name for name in (REJECTS, MANIFEST, JOURNAL, UNMATCHED_HASHES)]
    if inside_chunks or any(_same_file(given, path) for path in rewritten):
        raise RunDirError(
            f"the input {source} is a file planning into {run_dir} would delete or rewrite; "
            "move it out of the run directory first, or choose another --run-dir"
        )


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def _write_plan(
    export: Export, run_dir: Path, settings: PlanSettings, layout: ChunkLayout
) -> tuple[PlanStats, dict[int, str]]:
    """Plan every user: chunk files and rejects.ndjson written and flushed; returns the stats and
    each chunk's sha256."""
    writer = ChunkWriter(run_dir, layout)
    path = run_dir / REJECTS
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    except OSError as exc:
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as rejects:
            stats = plan_chunks(
                export.batches(),
                settings,
                layout,
                writer,
                rejects=rejects,
                where=export.reader.where,
                expected_users=estimate_users(export.reader.path),
                unmatched_hashes=run_dir / UNMATCHED_HASHES,
            )
        digests = writer.sync()
    finally:
        writer.close()
    stats.disk_wait_s = writer.waited_s
    return stats, digests


def same_input(manifest: Manifest, source: str) -> bool:
    """Whether `source` is the very export the plan was made from (size and sha256)."""
    if source == "-":
        return False
    size, digest = input_fingerprint(source)
    return size == manifest.input.bytes and digest == manifest.input.sha256
