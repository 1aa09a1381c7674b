"""A run sends to one tenant: the manifest records it, and resume, report, verify and status refuse
another one with one line (exit 2) before anything is asked of it. Run directories written before the
tenant was recorded keep working."""

from __future__ import annotations

from pathlib import Path

import orjson

from orchestrator.rundir.tracker import load_manifest
from tests.run_helpers import FAST, client_env, report, run_args, run_cli, sandbox, write_users


def test_the_run_records_its_tenant_and_every_later_command_refuses_another(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    with sandbox(FAST) as first:
        users = write_users(tmp_path / "users.json", 40)
        first.state.faults.poison_users([str(users[3]["email"])], code="CONFLICT")
        done = run_cli(run_args(tmp_path / "users.json", run_dir), client_env(first))
        assert done.returncode == 1, done.stderr
        tenant = load_manifest(run_dir).tenant
        assert tenant is not None
        assert (tenant.audience, tenant.base_url) == (
            "https://sandbox.local/api/v2/",
            first.base_url,
        )
    for stored in (run_dir / "errors").iterdir():
        stored.unlink()  # so that `report` has errors to fetch: it talks to the tenant
    with sandbox(FAST, domain="other.example.com") as other:
        env = client_env(other)
        commands: list[list[str | Path]] = [
            ["resume", "--run-dir", run_dir],
            ["report", "--run-dir", run_dir],
            ["verify", "--run-dir", run_dir],
            ["status", "--run-dir", run_dir, "--refresh"],
        ]
        for command in commands:
            refused = run_cli(command, env)
            assert refused.returncode == 2, (command, refused.stderr)
            (line,) = refused.stderr.strip().splitlines()
            assert "was sent to the tenant sandbox.local, not other.example.com" in line
            assert "Traceback" not in refused.stderr
        assert other.state.request_count == 0  # refused before anything was asked of it


def test_a_run_directory_written_before_the_tenant_was_recorded_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with sandbox(FAST) as server:
        users = write_users(tmp_path / "users.json", 30)
        planned = run_cli(
            [
                "chunk",
                tmp_path / "users.json",
                "--run-dir",
                run_dir,
                "--max-request-bytes",
                "20000",
            ],
            client_env(server),
        )
        assert planned.returncode == 0, planned.stderr
        manifest = orjson.loads((run_dir / "manifest.json").read_bytes())
        del manifest["tenant"]  # as an earlier release wrote it
        for chunk in manifest["chunks"]:
            del chunk["resolutions"]
        (run_dir / "manifest.json").write_bytes(orjson.dumps(manifest))
        done = run_cli(run_args(tmp_path / "users.json", run_dir), client_env(server))
        assert done.returncode == 0, done.stderr
        assert report(run_dir)["inserted"] == len(users)
        tenant = load_manifest(run_dir).tenant
        assert tenant is not None
        assert tenant.audience == "https://sandbox.local/api/v2/"
