"""The console script's entry point: a Ctrl-C while the tool is still loading exits 130 quietly."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from orchestrator.cli import run
    except KeyboardInterrupt:
        sys.stderr.write("orchestrator: interrupted\n")
        raise SystemExit(130) from None
    run()
