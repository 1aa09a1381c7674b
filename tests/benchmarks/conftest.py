"""Benchmark plumbing: collect `bench_*.py`, cache generated exports, print the results table.

Only `make bench` runs these (the default test run ignores tests/benchmarks). Exports are generated
once into tests/benchmarks/.data/ (git-ignored) and reused while the generator version is unchanged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from sample_data.generate import GENERATOR_VERSION, write_export
from tests.benchmarks._measure import BenchRow, format_table

DATA_DIR = Path(__file__).parent / ".data"
ROWS = pytest.StashKey[list[BenchRow]]()
#: Measurements a later, bigger case may use to decide whether it fits the time budget.
RATES = pytest.StashKey[dict[str, float]]()


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Module | None:
    """Collect bench_*.py modules that define tests (named so that no default run picks them up).

    bench_*.py files without a `def test_` are stand-alone timing scripts (e.g.
    bench_validation.py): they are run by hand and never imported here.
    """
    if not (file_path.name.startswith("bench_") and file_path.suffix == ".py"):
        return None
    if "\ndef test_" not in file_path.read_text(encoding="utf-8"):
        return None
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it already
    return pytest.Module.from_parent(parent, path=file_path)


@dataclass(frozen=True, slots=True)
class Export:
    """A generated export on disk: NDJSON, or the same users as one JSON array."""

    path: Path
    users: int
    size: int
    #: Seconds it took to generate (when it was generated, possibly in an earlier session).
    generate_s: float
    cached: bool


class ExportCache:
    """Generates importable NDJSON exports once and reuses them across sessions."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _paths(self, users: int, seed: int, fmt: str) -> tuple[Path, Path]:
        stem = f"users-{users}-seed{seed}-gen{GENERATOR_VERSION}"
        return self._dir / f"{stem}.{fmt}", self._dir / f"{stem}.{fmt}.meta.json"

    def _cached(self, users: int, seed: int, fmt: str) -> Export | None:
        path, meta_path = self._paths(users, seed, fmt)
        if not (path.is_file() and meta_path.is_file()):
            return None
        meta = orjson.loads(meta_path.read_bytes())
        size = path.stat().st_size
        if meta.get("bytes") != size:
            return None
        return Export(path, users, size, float(meta["generate_s"]), cached=True)

    def is_cached(self, users: int, *, seed: int = 1, fmt: str = "ndjson") -> bool:
        return self._cached(users, seed, fmt) is not None

    def get(self, users: int, *, seed: int = 1, fmt: str = "ndjson") -> Export:
        """The export of `users` users for `seed` as `fmt` ("ndjson" or "json"), generated now
        unless already cached. The same seed gives the same users in both formats."""
        cached = self._cached(users, seed, fmt)
        if cached is not None:
            return cached
        path, meta_path = self._paths(users, seed, fmt)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._drop_stale()
        partial = path.with_suffix(".partial")
        start = time.perf_counter()
        size = write_export(
            partial, users, fmt="json" if fmt == "json" else "ndjson", gzip=False, pretty=False,
            seed=seed,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        # Renamed only when complete: an interrupted generation is never mistaken for a cache hit.
        os.replace(partial, path)
        meta_path.write_bytes(orjson.dumps({"users": users, "bytes": size, "generate_s": elapsed}))
        return Export(path, users, size, elapsed, cached=False)

    def _drop_stale(self) -> None:
        """Delete exports of older generator versions: they are big and never read again."""
        for old in self._dir.glob("users-*"):
            if f"-gen{GENERATOR_VERSION}." not in old.name:
                old.unlink()


@pytest.fixture(scope="session")
def export_cache() -> ExportCache:
    return ExportCache(DATA_DIR)


@pytest.fixture(scope="session")
def bench_rows(pytestconfig: pytest.Config) -> list[BenchRow]:
    """Rows measured so far; printed as one table at the end of the session."""
    return pytestconfig.stash.setdefault(ROWS, [])


@pytest.fixture(scope="session")
def bench_rates(pytestconfig: pytest.Config) -> dict[str, float]:
    return pytestconfig.stash.setdefault(RATES, {})


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section("chunking benchmark")
    terminalreporter.write_line(format_table(rows))
    rates = config.stash.get(RATES, {})
    if "startup_s" in rates:
        terminalreporter.write_line(
            f"CLI start-up (chunk of a 1-user export): {rates['startup_s']:.2f} s, "
            f"{rates['startup_rss_mb']:.1f} MB peak RSS (included in every chunk time)"
        )
    results = DATA_DIR / "last-results.json"
    results.write_bytes(orjson.dumps([row.as_json() for row in rows], option=orjson.OPT_INDENT_2))
    terminalreporter.write_line(f"(also written to {results})")
