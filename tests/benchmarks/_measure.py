"""Benchmark measuring tools: a child's wall time and own peak RSS, and the orjson baseline.

`python -m tests.benchmarks._measure baseline line|batch FILE` runs the baseline in a fresh process,
so it is measured exactly as the CLI is (interpreter start-up included, RSS of its own).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import orjson

#: The baseline reads like a streaming reader would: 1 MiB at a time.
READ_BLOCK: Final = 1 << 20
BaselineMode = Literal["line", "batch", "decode"]


@dataclass(frozen=True, slots=True)
class ChildRun:
    """What one measured child process did."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    #: Peak resident set size of this child (from its wait4 rusage), in bytes; on Linux that
    #: rusage folds in its waited-for descendants: the largest process of its tree.
    peak_rss_bytes: int
    stdout: str
    stderr: str
    #: The largest peak RSS of any process of its tree (itself and waited-for descendants).
    tree_max_rss_bytes: int = 0
    #: Peak of the summed RSS over its process tree (sampled every 20 ms; Linux only, else 0):
    #: counts pages shared between forked processes once per process, so it overstates.
    tree_sum_rss_bytes: int = 0
    #: Peak of the summed PSS (shared pages split between sharers) over the tree, sampled.
    tree_sum_pss_bytes: int = 0

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / 1e6

    def tail(self, lines: int = 20) -> str:
        """The end of stderr (then stdout), for an assertion message."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


# Linux gives a process the RSS high-water mark of the process that forked it (the mm it ran on
# until exec), so a child spawned by a big pytest process reports at least pytest's peak. This tiny
# wrapper (a fresh interpreter, no site: ~10 MB) spawns the real command and reports the command's
# own rusage from os.wait4, with the wall time measured around it.
_WRAPPER: Final = """
import os, resource, sys, time

def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as file:
                todo.extend(int(c) for c in file.read().split())
        except OSError:
            pass
    return pids

def field(path, name):
    try:
        with open(path) as file:
            for line in file:
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0

report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
rss_sum = pss_sum = 0
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    if sys.platform == "linux":  # sampled: the peak sum over the process tree (workers included)
        pids = tree(pid)
        rss_sum = max(rss_sum, sum(field(f"/proc/{p}/status", "VmRSS:") for p in pids))
        pss_sum = max(pss_sum, sum(field(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids))
    time.sleep(0.02)
wall = time.perf_counter() - start
# The command's waited-for descendants fold into RUSAGE_CHILDREN: the largest process of the tree.
tree_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(report, "w") as file:
    file.write(f"{status} {usage.ru_maxrss} {wall!r} {tree_max} {rss_sum} {pss_sum}")
"""


def run_child(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float | None = None,
) -> ChildRun:
    """Run `argv` to completion and measure its wall time and its own peak RSS.

    The command runs under a small wrapper process that reaps it with `os.wait4`: that rusage
    covers this command alone (RUSAGE_CHILDREN would be the maximum over every child so far), and
    the wrapper's small footprint is all the command inherits (not the calling process's peak).
    Output goes to temporary files, so a chatty child can never block on a full pipe.

    Args:
        argv: the command; argv[0] is looked up on PATH.
        cwd: its working directory.
        env: its environment (default: inherited).
        timeout_s: kill it after this long and raise TimeoutError.

    Returns:
        The exit code, wall time, peak RSS and captured output.

    Raises:
        TimeoutError: the command ran longer than `timeout_s` (it has been killed).
        RuntimeError: the command could not be started.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rusage"
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        wrapper = [sys.executable, "-I", "-S", "-c", _WRAPPER, str(report), *argv]
        with out_path.open("wb") as out, err_path.open("wb") as err:
            # Own session: a timeout or Ctrl-C kills the wrapper and the command together.
            proc = subprocess.Popen(
                wrapper, stdout=out, stderr=err, cwd=cwd, env=env, start_new_session=True
            )
            try:
                proc.wait(timeout=timeout_s)
            except BaseException as exc:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if isinstance(exc, subprocess.TimeoutExpired):
                    raise TimeoutError(f"{argv[0]} ran longer than {timeout_s} s: killed") from None
                raise
        stdout = out_path.read_text("utf-8", "replace")
        stderr = err_path.read_text("utf-8", "replace")
        if not report.is_file():
            raise RuntimeError(f"could not run {list(argv)}:\n{stderr.strip()}")
        status, maxrss, wall, tree_max, rss_sum, pss_sum = report.read_text().split()
    return ChildRun(
        argv=tuple(argv),
        returncode=os.waitstatus_to_exitcode(int(status)),
        wall_s=float(wall),
        peak_rss_bytes=maxrss_bytes(int(maxrss)),
        stdout=stdout,
        stderr=stderr,
        tree_max_rss_bytes=maxrss_bytes(int(tree_max)),
        tree_sum_rss_bytes=int(rss_sum),
        tree_sum_pss_bytes=int(pss_sum),
    )


def maxrss_bytes(ru_maxrss: int) -> int:
    """`ru_maxrss` in bytes: Linux reports KiB, macOS bytes."""
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024


# --------------------------------------------------------------------------------------------
# The baseline: the least work any chunker must do, decode and re-encode every user with orjson
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """Users seen and time spent by one baseline pass (measured inside the process)."""

    mode: BaselineMode
    users: int
    seconds: float
    encoded_bytes: int


@contextlib.contextmanager
def _open(path: Path) -> Iterator[io.BufferedIOBase]:
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"  # by magic bytes, as the reader detects it
        raw.seek(0)
        if not gzipped:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as packed:
            yield packed


def iter_line_blocks(path: Path, block: int = READ_BLOCK) -> Iterator[list[bytes]]:
    """Yield the complete non-empty lines of an NDJSON file, one list per block read."""
    with _open(path) as file:
        carry = b""
        while data := file.read(block):
            lines = (carry + data).split(b"\n")
            carry = lines.pop()
            yield [line for line in lines if line.strip()]
        if carry.strip():
            yield [carry]


def baseline(path: Path, mode: BaselineMode) -> BaselineResult:
    """Decode and re-encode every user of an NDJSON file with orjson.

    Args:
        path: the NDJSON export (gzip detected by magic bytes).
        mode: "line" does `orjson.dumps(orjson.loads(line))` per line; "batch" decodes a whole
            block as one array (`b"[" + b",".join(lines) + b"]"`) then dumps each user, the
            fairest lower bound for a streaming chunker; "decode" only decodes each line (what
            any reader of the export must do: a nightly sync's floor).

    Returns:
        Users processed, seconds spent and bytes re-encoded.
    """
    loads, dumps = orjson.loads, orjson.dumps
    users = encoded = 0
    start = time.perf_counter()
    for lines in iter_line_blocks(path):
        if mode == "line":
            for line in lines:
                encoded += len(dumps(loads(line)))
            users += len(lines)
        elif mode == "decode":
            for line in lines:
                loads(line)
            users += len(lines)
        else:
            batch = loads(b"[" + b",".join(lines) + b"]")
            for user in batch:
                encoded += len(dumps(user))
            users += len(batch)
    return BaselineResult(mode, users, time.perf_counter() - start, encoded)


# --------------------------------------------------------------------------------------------
# The results table
# --------------------------------------------------------------------------------------------

#: Targets of the chunking benchmark: at most this times the per-line baseline, and this much RSS.
TARGET_RATIO: Final = 4.0
TARGET_RSS_MB: Final = 120.0


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One measured input of the chunking benchmark."""

    input: str
    size_bytes: int
    users: int
    chunk: ChildRun
    line: ChildRun
    batch: ChildRun
    chunks: int
    #: Users the CLI rejected, from its JSON summary (None if it printed none); expected 0.
    rejected: int | None
    #: chunk wall / per-line baseline wall of each round, the two runs taken one after the other.
    paired_ratios: tuple[float, ...] = ()
    #: Seconds the fastest chunk run waited for its files to reach the disk (its summary's
    #: disk_wait_s; None if it printed none): time the baselines, which write nothing, never spend.
    disk_wait_s: float | None = None

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    @property
    def ratio(self) -> float:
        """chunk wall time / per-line baseline wall time (the target's measure)."""
        return self.chunk.wall_s / self.line.wall_s

    @property
    def paired_ratio(self) -> float:
        """The median round's ratio: a second view of the same runs for a machine whose speed
        drifts within minutes. Fastest to fastest can pair a long run's ordinary moment with a
        short run's quick one; a round compares runs taken back to back. Shown beside `ratio`;
        the target is judged on `ratio`."""
        return statistics.median(self.paired_ratios) if self.paired_ratios else self.ratio

    @property
    def ratio_batch(self) -> float:
        return self.chunk.wall_s / self.batch.wall_s

    @property
    def meets_ratio(self) -> bool:
        return self.ratio <= TARGET_RATIO

    @property
    def tree_rss_mb(self) -> float:
        """The chunk command's memory, workers included: the most of its own peak RSS, the tree's
        largest process, and the tree's sampled summed RSS (which counts shared pages twice)."""
        run = self.chunk
        return max(run.peak_rss_bytes, run.tree_max_rss_bytes, run.tree_sum_rss_bytes) / 1e6

    @property
    def meets_rss(self) -> bool:
        return self.tree_rss_mb <= TARGET_RSS_MB

    def as_json(self) -> dict[str, object]:
        return {
            "input": self.input,
            "size_mb": round(self.size_mb, 1),
            "users": self.users,
            "chunks": self.chunks,
            "rejected": self.rejected,
            "chunk_s": round(self.chunk.wall_s, 3),
            "chunk_mb_s": round(self.size_mb / self.chunk.wall_s, 1),
            "baseline_line_s": round(self.line.wall_s, 3),
            "baseline_batch_s": round(self.batch.wall_s, 3),
            "ratio": round(self.ratio, 2),
            "paired_ratios": [round(ratio, 2) for ratio in self.paired_ratios],
            "chunk_disk_wait_s": self.disk_wait_s,
            "ratio_batch": round(self.ratio_batch, 2),
            "chunk_peak_rss_mb": round(self.chunk.peak_rss_mb, 1),
            "chunk_tree_max_rss_mb": round(self.chunk.tree_max_rss_bytes / 1e6, 1),
            "chunk_tree_sum_rss_mb": round(self.chunk.tree_sum_rss_bytes / 1e6, 1),
            "chunk_tree_sum_pss_mb": round(self.chunk.tree_sum_pss_bytes / 1e6, 1),
            "baseline_peak_rss_mb": round(self.line.peak_rss_mb, 1),
            "meets_ratio": self.meets_ratio,
            "meets_rss": self.meets_rss,
        }


#: (header, width, format spec); text columns are left-aligned, numbers right-aligned.
_COLUMNS: Final = (
    ("input", 12, "s"),
    ("size MB", 8, ".1f"),
    ("users", 10, ",d"),
    ("chunks", 7, ",d"),
    ("rejected", 8, "s"),
    ("chunk s", 8, ".2f"),
    ("MB/s", 7, ".1f"),
    ("base s", 7, ".2f"),
    ("batch s", 7, ".2f"),
    ("ratio", 6, ".2f"),
    ("paired", 6, ".2f"),
    ("disk s", 6, "s"),
    ("r/batch", 7, ".2f"),
    ("RSS MB", 7, ".1f"),
    ("tree MB", 7, ".1f"),
    ("PSS MB", 7, ".1f"),
    ("targets", 22, "s"),
)


def _cell(value: object, width: int, spec: str) -> str:
    align = "<" if spec == "s" else ">"
    return format(value, f"{align}{width}{spec}")


def summary_event(stdout: str) -> dict[str, object] | None:
    """The CLI's last `{"event": "summary", ...}` line (its JSON output when not on a terminal)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("event") == "summary":
                return event
    return None


def format_table(rows: Sequence[BenchRow]) -> str:
    """The results as a fixed-width table, with the targets each row meets or misses."""
    header = (_cell(name, width, "s" if spec == "s" else "") for name, width, spec in _COLUMNS)
    lines = ["  ".join(header).rstrip()]
    for row in rows:
        targets = (
            f"ratio {'ok' if row.meets_ratio else 'MISS'}, RSS {'ok' if row.meets_rss else 'MISS'}"
        )
        values: tuple[object, ...] = (
            row.input,
            row.size_mb,
            row.users,
            row.chunks,
            "?" if row.rejected is None else f"{row.rejected:>8,}",
            row.chunk.wall_s,
            row.size_mb / row.chunk.wall_s,
            row.line.wall_s,
            row.batch.wall_s,
            row.ratio,
            row.paired_ratio,
            "?" if row.disk_wait_s is None else f"{row.disk_wait_s:>6.2f}",
            row.ratio_batch,
            row.chunk.peak_rss_mb,
            row.tree_rss_mb,
            row.chunk.tree_sum_pss_bytes / 1e6,
            targets,
        )
        cells = (_cell(v, w, spec) for (_, w, spec), v in zip(_COLUMNS, values, strict=True))
        lines.append("  ".join(cells).rstrip())
    lines.append(
        "ratio = chunk wall / per-line orjson baseline wall, fastest of each (r/batch: / batched "
        "baseline); paired: the median over rounds of chunk / baseline run back to back; "
        "disk s: of the chunk time, the wait for chunk files to reach the disk; "
        f"targets: ratio <= {TARGET_RATIO:g}, chunk peak RSS <= {TARGET_RSS_MB:g} MB\n"
        "RSS MB: the chunk process alone; tree MB: with its worker processes (the larger of the "
        "largest process and the sampled sum of RSS, which counts shared pages in each process; "
        "the RSS target applies to it); PSS MB: the sampled sum of PSS (shared pages split)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`baseline line|batch FILE`: run the baseline and print its result as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks._measure")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("baseline", help="decode+encode every user of an NDJSON file")
    run.add_argument("mode", choices=("line", "batch", "decode"))
    run.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    result = baseline(args.file, args.mode)
    sys.stdout.buffer.write(
        orjson.dumps(
            {
                "mode": result.mode,
                "users": result.users,
                "seconds": result.seconds,
                "encoded_bytes": result.encoded_bytes,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
