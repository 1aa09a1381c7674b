"""Chunk files: written, hashed and flushed beside planning; checked before they are sent."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from orchestrator.errors import RunDirError
from orchestrator.plan.pack import PackedChunk
from orchestrator.plan.planner import ChunkLayout
from orchestrator.rundir.chunkfiles import ChunkWriter

LAYOUT = ChunkLayout(512_000, "x")


def test_a_chunk_file_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    writer = ChunkWriter(tmp_path / "run", LAYOUT)
    (tmp_path / "run" / "chunks" / "000000.json").mkdir()  # the file's place is taken
    writer(PackedChunk(0, b"[]", 0, 0, 0))
    with pytest.raises(RunDirError, match=r"cannot write the chunk file .*000000\.json"):
        writer.sync()


def test_the_chunk_writer_counts_its_waits_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_fsync(fd: int) -> None:  # a disk that takes 20 ms a file
        time.sleep(0.02)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(ChunkWriter, "WRITES_QUEUED", 1)
    writer = ChunkWriter(tmp_path / "run", LAYOUT)
    for index in range(10):
        writer(PackedChunk(index, b"[]", 0, 0, 0))
    digests = writer.sync()
    assert sorted(digests) == list(range(10))
    # 10 flushes by 2 threads: ~0.1 s in all, nearly all of it spent waiting here.
    assert writer.waited_s >= 0.05
