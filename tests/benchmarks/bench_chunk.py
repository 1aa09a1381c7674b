"""Planning benchmark: `orchestrator chunk` against a bare orjson decode+encode of the same users.

Each case runs three fresh processes on page-cached files, each reaped with `os.wait4` by a tiny
wrapper so its peak RSS is its own (see `_measure.run_child`): the CLI planning the export
(`python -m orchestrator chunk FILE --run-dir DIR`, one process), and the per-line and batched
orjson baselines over the same users as NDJSON. The same 200,000 users are planned as NDJSON and as
one JSON array (~110 MB each); the 2,000,000-user pair (~1.1 GB) shows whether memory stays flat.
Timings are printed, never asserted: a run fails only if a process fails. BENCH_REPEAT=N (default
3) runs each process N times, interleaved, and reports the fastest, for a noisy (shared) machine.

The ~1.1 GB cases: BENCH_LARGE=1 always runs them, BENCH_LARGE=0 never does; unset, they run only
when the ~110 MB case predicts they fit LARGE_BUDGET_S: 10x that case's runs, plus 10x its
generation time when the big file is not cached yet (the generator does ~15-25 MB/s).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest

from sample_data.generate import write_export
from tests.benchmarks._measure import (
    BenchRow,
    ChildRun,
    baseline,
    format_table,
    run_child,
    summary_event,
)
from tests.benchmarks.conftest import Export, ExportCache

ROOT = Path(__file__).resolve().parents[2]
LARGE_BUDGET_S = 300.0
#: BENCH_REPEAT=N runs each process N times and keeps the fastest (the machine may be shared).
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
#: A child gets this long per MB of input before it is killed (the runs take well under 1 s/MB).
TIMEOUT_S_PER_MB = 2.0


@dataclass(frozen=True, slots=True)
class Case:
    """One input of the benchmark: a size and a format."""

    name: str
    users: int
    fmt: str
    large: bool


CASES = (
    Case("ndjson-110MB", users=200_000, fmt="ndjson", large=False),  # ~550 bytes per user
    Case("json-110MB", users=200_000, fmt="json", large=False),
    Case("ndjson-1.1GB", users=2_000_000, fmt="ndjson", large=True),
    Case("json-1.1GB", users=2_000_000, fmt="json", large=True),
)


def _python(*args: str, timeout_s: float) -> ChildRun:
    return run_child([sys.executable, *args], cwd=ROOT, timeout_s=timeout_s)


def _warm(path: Path) -> None:
    """Read the file once so every measured process finds it in the page cache."""
    with path.open("rb") as file:
        while file.read(8 << 20):
            pass


def _large_decision(case: Case, cache_hit: bool, rates: dict[str, float]) -> str | None:
    """Why to skip the large case, or None to run it."""
    setting = os.environ.get("BENCH_LARGE", "")
    if setting == "1":
        return None
    if setting == "0":
        return "BENCH_LARGE=0"
    if "s_per_user" not in rates:
        return "no small-case measurement to predict its duration; set BENCH_LARGE=1 to force"
    predicted = case.users * rates["s_per_user"]
    if not cache_hit:
        predicted += case.users * rates["generate_s_per_user"]
    if predicted > LARGE_BUDGET_S:
        return f"predicted {predicted:.0f} s > {LARGE_BUDGET_S:.0f} s budget; BENCH_LARGE=1 runs it"
    return None


def _chunk_files(run_dir: Path) -> int:
    return sum(1 for _ in (run_dir / "chunks").glob("*.json"))


# --------------------------------------------------------------------------------------------
# Self-tests of the harness: fast, so a broken measurement shows before a long run.
# --------------------------------------------------------------------------------------------


def test_peak_rss_is_the_childs_own() -> None:
    # Grow this process well past the child's size: a plain fork+wait4 would report this peak
    # (Linux hands the parent's high-water mark to the child); the wrapper must not.
    ballast = bytearray(150_000_000)
    ballast[::4096] = b"1" * len(ballast[::4096])
    small = _python("-c", "pass", timeout_s=30)
    big = _python(
        "-c", "x = bytearray(50_000_000); x[::4096] = b'1' * len(x[::4096])", timeout_s=30
    )
    del ballast
    assert small.returncode == big.returncode == 0
    assert small.peak_rss_bytes < 30e6
    assert 50e6 <= big.peak_rss_bytes <= 80e6
    # RUSAGE_CHILDREN would now say >= 50 MB for any later child; each run is measured alone.
    assert _python("-c", "pass", timeout_s=30).peak_rss_bytes < 30e6


_GRANDCHILD = """
import multiprocessing, time
def grow():
    x = bytearray(60_000_000); x[::4096] = b'1' * len(x[::4096]); time.sleep(0.3)
if __name__ == "__main__":
    p = multiprocessing.get_context("fork").Process(target=grow); p.start(); p.join()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the tree is sampled from /proc")
def test_worker_processes_count_in_the_tree() -> None:
    run = _python("-c", _GRANDCHILD, timeout_s=30)
    assert run.returncode == 0, run.tail()
    # wait4's rusage covers the command's waited-for children too: the largest process.
    assert run.peak_rss_bytes >= 60e6
    assert run.tree_max_rss_bytes >= 60e6
    assert run.tree_sum_rss_bytes >= 60e6
    assert run.tree_sum_pss_bytes >= 55e6


def test_run_child_kills_at_timeout() -> None:
    with pytest.raises(TimeoutError):
        _python("-c", "import time; time.sleep(30)", timeout_s=0.5)


def test_run_child_reports_a_command_that_cannot_start() -> None:
    with pytest.raises(RuntimeError, match="could not run"):
        run_child(["/nonexistent/command"], timeout_s=30)


def test_run_child_reports_exit_code_and_output() -> None:
    run = _python("-c", "import sys; print('out'); sys.exit('boom')", timeout_s=30)
    assert run.returncode == 1
    assert run.stdout == "out\n"
    assert "boom" in run.tail()


@pytest.mark.parametrize("gzip", [False, True])
def test_baselines_count_every_user(tmp_path: Path, gzip: bool) -> None:
    path = tmp_path / "users.ndjson"
    write_export(path, 3_000, fmt="ndjson", gzip=gzip, pretty=False, seed=5)
    line, batch = baseline(path, "line"), baseline(path, "batch")
    assert line.users == batch.users == 3_000
    assert line.encoded_bytes == batch.encoded_bytes


def test_export_cache_reuses_complete_files(tmp_path: Path) -> None:
    cache = ExportCache(tmp_path)
    first = cache.get(500)
    again = cache.get(500)
    assert not first.cached
    assert again == Export(first.path, 500, first.size, first.generate_s, cached=True)
    assert not list(tmp_path.glob("*.partial"))


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _skip_without_cli() -> None:
    if importlib.util.find_spec("orchestrator.cli") is None:
        pytest.skip("orchestrator.cli does not exist yet")


def test_cli_startup(tmp_path: Path, bench_rates: dict[str, float]) -> None:
    """The fixed cost in every chunk time: the CLI planning a one-user export."""
    _skip_without_cli()
    path = tmp_path / "one.ndjson"
    write_export(path, 1, fmt="ndjson", gzip=False, pretty=False, seed=1)
    run = _python(
        "-m", "orchestrator", "chunk", str(path), "--run-dir", str(tmp_path / "run"), timeout_s=60
    )
    assert run.returncode == 0, run.tail()
    bench_rates["startup_s"] = run.wall_s
    bench_rates["startup_rss_mb"] = run.peak_rss_mb


def _chunk_once(export: Export, run_dir: Path, timeout: float) -> tuple[ChildRun, int]:
    """One measured `orchestrator chunk` run: (the run, chunk files written)."""
    try:
        argv = ("-m", "orchestrator", "chunk", str(export.path), "--run-dir", str(run_dir))
        run = _python(*argv, timeout_s=timeout)
        assert run.returncode == 0, f"orchestrator chunk exited {run.returncode}:\n{run.tail()}"
        return run, _chunk_files(run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # up to 1 GB of chunk files


def _baseline_once(export: Export, mode: str, timeout: float) -> ChildRun:
    """A baseline over `export`'s users as NDJSON (the same users, whatever the case's format)."""
    run = _python(
        "-m", "tests.benchmarks._measure", "baseline", mode, str(export.path), timeout_s=timeout
    )
    assert run.returncode == 0, run.tail()
    assert orjson.loads(run.stdout)["users"] == export.users
    return run


def _best(runs: list[ChildRun]) -> ChildRun:
    """The fastest run (noise only ever adds time), with the highest peak RSS seen."""
    fastest = min(runs, key=lambda run: run.wall_s)
    return replace(
        fastest,
        peak_rss_bytes=max(run.peak_rss_bytes for run in runs),
        tree_max_rss_bytes=max(run.tree_max_rss_bytes for run in runs),
        tree_sum_rss_bytes=max(run.tree_sum_rss_bytes for run in runs),
        tree_sum_pss_bytes=max(run.tree_sum_pss_bytes for run in runs),
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_chunk_throughput(
    case: Case,
    export_cache: ExportCache,
    bench_rows: list[BenchRow],
    bench_rates: dict[str, float],
    tmp_path: Path,
) -> None:
    _skip_without_cli()
    if case.large:
        cached = export_cache.is_cached(case.users, fmt=case.fmt)
        reason = _large_decision(case, cached, bench_rates)
        if reason:
            pytest.skip(reason)
    export = export_cache.get(case.users, fmt=case.fmt)
    same_users = export_cache.get(case.users, fmt="ndjson")  # what the baselines read
    _warm(export.path)
    _warm(same_users.path)
    timeout = max(60.0, export.size / 1e6 * TIMEOUT_S_PER_MB)
    chunks_runs, line_runs, batch_runs = [], [], []
    for attempt in range(REPEAT):  # interleaved, so a burst of load hits all three alike
        chunk_run, chunks = _chunk_once(export, tmp_path / f"run{attempt}", timeout)
        chunks_runs.append(chunk_run)
        line_runs.append(_baseline_once(same_users, "line", timeout))
        batch_runs.append(_baseline_once(same_users, "batch", timeout))
    chunk, line, batch = _best(chunks_runs), _best(line_runs), _best(batch_runs)
    summary = summary_event(chunk.stdout) or {}
    rejected = summary.get("rejected")
    rejected = rejected if isinstance(rejected, int) else None
    disk_wait = summary.get("disk_wait_s")
    disk_wait = float(disk_wait) if isinstance(disk_wait, int | float) else None
    paired = tuple(c.wall_s / base.wall_s for c, base in zip(chunks_runs, line_runs, strict=True))
    row = BenchRow(
        case.name,
        export.size,
        export.users,
        chunk,
        line,
        batch,
        chunks,
        rejected,
        paired,
        disk_wait,
    )
    bench_rows.append(row)
    print("\n" + format_table([row]))
    if not case.large:
        spent = sum(run.wall_s for run in (*chunks_runs, *line_runs, *batch_runs))
        bench_rates["s_per_user"] = spent / export.users
        bench_rates["generate_s_per_user"] = export.generate_s / export.users
