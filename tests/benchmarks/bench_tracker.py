"""Tracker benchmark: the cost of one recorded transition, and of compacting the manifest.

A plan of N chunks goes through every transition of a successful run (submitting, submitted,
progressed, completed) with the default 2 s compaction interval, compactions included. The cost per
transition is compared with a bare `write` + `fsync` of a ~100-byte line on the same file system,
measured in the same session, and with the same run at 1,000 chunks (O(1): the two should match).
The run is repeated with fsync disabled to show the tracker's own CPU cost without disk noise.
Timings are printed; only an O(n) regression of that CPU cost fails the run.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from orchestrator.rundir.claim import claim_new
from orchestrator.rundir.layout import MANIFEST
from orchestrator.rundir.manifest import Manifest
from orchestrator.rundir.tracker import Tracker
from tests.rundir.test_manifest import make_manifest

SIZES = (1_000, 10_000)
SUMMARY = {"total": 500, "inserted": 500, "updated": 0, "failed": 0}
#: Compactions timed on the largest plan once every chunk completed.
COMPACTIONS_MEASURED = 5


class CountingTracker(Tracker):
    """A tracker that times its compactions."""

    def __init__(
        self, run_dir: Path, manifest: Manifest, journal: BinaryIO, compact_interval: float
    ) -> None:
        self.compaction_s: list[float] = []
        super().__init__(run_dir, manifest, journal, compact_interval)

    def _compact(self) -> None:
        start = time.perf_counter()
        super()._compact()
        self.compaction_s.append(time.perf_counter() - start)


@dataclass(frozen=True, slots=True)
class RunResult:
    chunks: int
    transitions: int
    seconds: float
    compactions: list[float]

    @property
    def per_transition_us(self) -> float:
        return self.seconds / self.transitions * 1e6


def bare_fsync_us(directory: Path, lines: int = 2_000) -> float:
    """Mean µs of one `os.write` + `os.fsync` of a 100-byte line appended to a file."""
    line = b'{"seq":123456,"event":"submitted","chunk":1234,"job_id":"job_abcdefghijklmnop"}' + (
        b" " * 19 + b"\n"
    )
    path = directory / "baseline.ndjson"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(lines):
            os.write(fd, line)
            os.fsync(fd)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()
    return elapsed / lines * 1e6


def run_all_transitions(run_dir: Path, chunks: int) -> tuple[RunResult, CountingTracker]:
    """Every chunk through submitting -> pending -> processing -> completed; the tracker is open."""
    tracker = CountingTracker.create(run_dir, make_manifest(chunks), claim_new(run_dir))
    assert isinstance(tracker, CountingTracker)
    tracker.compaction_s.clear()  # the one at creation is not part of the run
    start = time.perf_counter()
    for index in range(chunks):
        tracker.submitting(index)
        tracker.submitted(index, f"job_{index:020d}")
        tracker.progressed(index, "processing")
        tracker.completed(index, SUMMARY)
    elapsed = time.perf_counter() - start
    return RunResult(chunks, 4 * chunks, elapsed, list(tracker.compaction_s)), tracker


@pytest.fixture
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def _table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def test_transition_cost_is_constant_and_close_to_one_fsync(tmp_path: Path) -> None:
    baseline_before = bare_fsync_us(tmp_path)
    results: list[RunResult] = []
    compaction_ms: list[float] = []
    manifest_mb = open_ms = 0.0
    for chunks in SIZES:
        run_dir = tmp_path / f"run-{chunks}"
        result, tracker = run_all_transitions(run_dir, chunks)
        results.append(result)
        if chunks == max(SIZES):
            for _ in range(COMPACTIONS_MEASURED):
                start = time.perf_counter()
                tracker.compact()
                compaction_ms.append((time.perf_counter() - start) * 1e3)
            manifest_mb = (run_dir / MANIFEST).stat().st_size / 1e6
        tracker.close()
        if chunks == max(SIZES):
            start = time.perf_counter()
            Tracker.open(run_dir).close()
            open_ms = (time.perf_counter() - start) * 1e3
    baseline = (baseline_before + bare_fsync_us(tmp_path)) / 2

    _table(
        "tracker: every transition of every chunk, default 2 s compaction interval",
        ("chunks", "transitions", "total s", "µs/transition", "x bare fsync", "compactions"),
        [
            (
                f"{r.chunks:,}",
                f"{r.transitions:,}",
                f"{r.seconds:.2f}",
                f"{r.per_transition_us:.0f}",
                f"{r.per_transition_us / baseline:.2f}",
                f"{len(r.compactions)}",
            )
            for r in results
        ],
    )
    small, large = results
    print(f"bare write+fsync of a 100-byte line: {baseline:.0f} µs (mean of before/after)")
    print(
        f"µs/transition at {large.chunks:,} / at {small.chunks:,} chunks: "
        f"{large.per_transition_us / small.per_transition_us:.2f}"
    )
    print(
        f"compaction at {large.chunks:,} chunks ({manifest_mb:.1f} MB manifest): median "
        f"{statistics.median(compaction_ms):.1f} ms, max {max(compaction_ms):.1f} ms; "
        f"open (load + validate + compact): {open_ms:.0f} ms"
    )


@pytest.mark.usefixtures("no_fsync")
def test_tracker_cpu_cost_per_transition_is_o1(tmp_path: Path) -> None:
    results = [run_all_transitions(tmp_path / f"run-{n}", n) for n in SIZES]
    for _, tracker in results:
        tracker.close()
    _table(
        "tracker CPU cost, fsync disabled (what the tracker adds on top of the disk)",
        ("chunks", "µs/transition", "compactions"),
        [
            (f"{r.chunks:,}", f"{r.per_transition_us:.1f}", f"{len(r.compactions)}")
            for r, _ in results
        ],
    )
    (small, _), (large, _) = results
    ratio = large.per_transition_us / small.per_transition_us
    print(f"ratio {large.chunks:,} / {small.chunks:,} chunks: {ratio:.2f}")
    # O(n) work per transition would make this ~10; allow plenty for a busy machine.
    assert ratio < 3, ratio
