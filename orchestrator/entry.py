"""The console script's entry point: Ctrl-C while the tool loads exits 130 quietly.

While the command line loads, SIGINT only raises a flag: an interrupt raised inside an extension
module's initialisation can crash the interpreter (seen with orjson's) instead of stopping it.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    interrupted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    try:
        from orchestrator.cli import run
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        sys.stderr.write("orchestrator: interrupted\n")
        raise SystemExit(130)
    run()
