"""The README's lines that start the sandbox and point a shell at it work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.run_helpers import REPO


def readme_block(containing: str) -> str:
    """The README's ```sh block that holds `containing`, exactly as written."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", readme, flags=re.DOTALL)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_the_readme_sandbox_lines_give_a_shell_a_working_client(tmp_path: Path) -> None:
    lines = readme_block("> sandbox.env &")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH0_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # -e: any line that fails fails the test; the trap stops the sandbox if a line did.
    script = f"trap 'kill %1 2>/dev/null' EXIT\n{lines}"
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"ok":true' in done.stdout  # the check passed against the sandbox
    assert (tmp_path / "sandbox.env").read_text().count("export AUTH0_") >= 4
