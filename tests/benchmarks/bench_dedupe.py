"""Timing script (not a test): SeenKeys bytes/key and ns/add at 1M and 5M keys, vs a set of str.

Times are CPU time of this process (other load on the machine inflates wall-clock figures).

Run: `.venv/bin/python tests/benchmarks/bench_dedupe.py [--sizes 1000000 5000000]`.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

from orchestrator.dedupe import SeenKeys


def keys(n: int) -> list[str]:
    return [f"user.{i:08d}@example.com" for i in range(n)]


def measure(n: int) -> None:
    batch = keys(n)
    seen = SeenKeys()  # default size: growth is part of the cost measured
    start = time.process_time()
    for key in batch:
        seen.add(key)
    grown = time.process_time() - start
    start = time.process_time()
    repeats = sum(seen.add(key) for key in batch)
    again = time.process_time() - start
    assert repeats == n

    tracemalloc.start()
    reference = set(batch)
    set_bytes = tracemalloc.get_traced_memory()[0] + sum(sys.getsizeof(k) for k in batch)
    tracemalloc.stop()
    del reference

    print(
        f"{n:>10,} keys: SeenKeys {seen.memory_bytes / n:5.1f} B/key "
        f"(set of str incl. strings {set_bytes / n:5.1f} B/key); "
        f"add new {grown / n * 1e9:5.0f} ns (incl. growth), add repeat {again / n * 1e9:5.0f} ns"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    for n in parser.parse_args().sizes:
        measure(n)


if __name__ == "__main__":
    main()
