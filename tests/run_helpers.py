"""Helpers for end-to-end tests: a sandbox in a thread, the real CLI as a process, export files.

The CLI runs exactly as a user runs it (`python -m orchestrator ...`), with the sandbox's environment
variables; tests then compare the run directory with what the sandbox recorded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import orjson

from orchestrator.rundir.manifest import Manifest
from orchestrator.rundir.tracker import load_manifest
from orchestrator.sandbox import (
    DATABASE_CONNECTION_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SandboxSettings,
    SandboxThread,
)

#: The repository, and its sample exports.
REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"

#: Sandbox settings that make jobs quick, so end-to-end tests take seconds.
FAST = SandboxSettings(job_latency=0.0, job_seconds=0.15)


@contextmanager
def sandbox(settings: SandboxSettings = FAST, **changes: object) -> Iterator[SandboxThread]:
    with SandboxThread(replace(settings, **changes)) as server:  # type: ignore[arg-type]
        yield server


def client_env(server: SandboxThread, *, static_token: str | None = None) -> dict[str, str]:
    """The environment a CLI process needs to talk to `server` (and nothing else of ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH0_")}
    env["AUTH0_BASE_URL"] = server.base_url
    env["AUTH0_DOMAIN"] = server.settings.domain
    if static_token:
        env["AUTH0_TOKEN"] = static_token
    else:
        env["AUTH0_CLIENT_ID"] = DEFAULT_CLIENT_ID
        env["AUTH0_CLIENT_SECRET"] = DEFAULT_CLIENT_SECRET
    return env


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *map(str, args)]


def run_cli(
    args: Sequence[str | Path], env: dict[str, str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_cli(args: Sequence[str | Path], env: dict[str, str]) -> subprocess.Popen[str]:
    """The CLI started in the background, its stderr kept (to read with `communicate`)."""
    return subprocess.Popen(
        cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def run_args(
    source: Path, run_dir: Path, *extra: str, request_bytes: int = 20_000
) -> list[str | Path]:
    return [
        "run",
        source,
        "--run-dir",
        run_dir,
        "--connection-id",
        DATABASE_CONNECTION_ID,
        "--max-request-bytes",
        str(request_bytes),
        "--max-rps",
        "200",
        "--log-format",
        "json",
        *extra,
    ]


def write_users(path: Path, count: int, *, prefix: str = "user") -> list[dict[str, object]]:
    """A JSON array of `count` simple valid users with distinct emails."""
    users: list[dict[str, object]] = [
        {
            "email": f"{prefix}{i}@example.com",
            "email_verified": True,
            "user_id": f"{prefix}-{i:05d}",
            "name": f"User Number {i}",
            "user_metadata": {"note": "x" * (i % 50)},
        }
        for i in range(count)
    ]
    path.write_bytes(orjson.dumps(users))
    return users


def manifest(run_dir: Path) -> Manifest:
    return load_manifest(run_dir)


def report(run_dir: Path) -> dict[str, object]:
    data = orjson.loads((run_dir / "report.json").read_bytes())
    assert isinstance(data, dict)
    return data


def assert_every_user_once(server: SandboxThread, users: Sequence[dict[str, object]]) -> None:
    """The tenant holds exactly these users, each once."""
    assert server.state.user_count == len(users)
    for user in users:
        found = server.state.users_by_email(str(user["email"]))
        assert len(found) == 1, user["email"]
