"""Upload benchmark: how well `run` keeps the tenant's job slots busy within a request budget.

The sandbox plays a tenant with 2 job slots, ~3 s jobs and a 10 request/s budget; the client runs
with `--max-rps 8`. Measured from the sandbox's own record:
  slot utilisation = time slots held a job / (slots x span from first POST to last job end)
  429 share        = requests answered 429 / all requests
and the speed-up over a submit-one-and-wait loop on the same chunks (`--job-slots 1`, same client).
Run by `make bench`; prints a table, asserts only that the runs succeeded.
"""

from __future__ import annotations

import time
from pathlib import Path

from orchestrator.rundir.tracker import load_manifest
from orchestrator.sandbox import SandboxSettings, SandboxThread
from sample_data.generate import write_export
from tests.run_helpers import client_env, run_args, run_cli

USERS = 18_000  # realistic generated users, ~930 per full request: 20 chunks
JOB_LATENCY = 0.3  # pending before processing starts
JOB_SECONDS = 2.7  # processing: ~3 s per job in all
TENANT = SandboxSettings(
    job_slots=2,
    job_latency=JOB_LATENCY,
    job_seconds=JOB_SECONDS,
    rate_limit_per_second=10,
    rate_limit_burst=10,
    record_emails=False,
)


def measure(source: Path, run_dir: Path, *extra: str) -> dict[str, float]:
    with SandboxThread(TENANT) as server:
        start = time.perf_counter()
        done = run_cli(
            [*run_args(source, run_dir, request_bytes=512_000)[:-4], "--max-rps", "8", *extra],
            client_env(server),
            timeout=900,
        )
        wall = time.perf_counter() - start
        assert done.returncode == 0, done.stderr
        jobs = server.state.jobs()
        requests = server.state.requests
        span = max(j.ended for j in jobs) - min(j.created for j in jobs)
        held = sum(j.ended - j.created for j in jobs)
        slots = TENANT.job_slots
        answered_429 = sum(1 for r in requests if r.status == 429)
        gets = sum(1 for r in requests if r.method == "GET" and r.path.startswith("/api/v2/jobs/"))
        return {
            "wall_s": wall,
            "span_s": span,
            "jobs": len(jobs),
            "utilisation": held / (min(slots, len(jobs)) * span),
            "requests": len(requests),
            "share_429": answered_429 / len(requests),
            "slot_429": server.state.too_many_requests.get("job_slots", 0),
            "gets_per_job": gets / len(jobs),
            "peak_jobs": server.state.peak_active_jobs,
            "chunks": len(load_manifest(run_dir).chunks),
        }


def test_upload_keeps_both_slots_busy(tmp_path: Path) -> None:
    source = tmp_path / "users.ndjson"
    write_export(source, USERS, fmt="ndjson", gzip=False, pretty=False, seed=3)
    busy = measure(source, tmp_path / "auto")
    sequential = measure(source, tmp_path / "one", "--job-slots", "1")
    speedup = sequential["span_s"] / busy["span_s"]
    rows = [
        ("orchestrator run (--job-slots auto)", busy),
        ("submit-one-and-wait (--job-slots 1)", sequential),
    ]
    print()
    print(
        f"upload benchmark: {busy['chunks']:.0f} chunks of {USERS // busy['chunks']:.0f} users, "
        f"~{JOB_LATENCY + JOB_SECONDS:.0f} s jobs, tenant 2 slots and 10 req/s, client --max-rps 8"
    )
    print(
        f"{'mode':<38}{'span s':>8}{'jobs':>6}{'slot util':>11}{'429 share':>11}"
        f"{'slot 429s':>11}{'GETs/job':>10}{'peak jobs':>11}"
    )
    for name, m in rows:
        print(
            f"{name:<38}{m['span_s']:>8.1f}{m['jobs']:>6.0f}{m['utilisation']:>11.1%}"
            f"{m['share_429']:>11.2%}{m['slot_429']:>11.0f}{m['gets_per_job']:>10.1f}{m['peak_jobs']:>11.0f}"
        )
    print(
        f"speed-up over submit-one-and-wait: {speedup:.2f}x (target >= 1.9x); "
        f"slot utilisation {busy['utilisation']:.1%} (target >= 97%); "
        f"429 share {busy['share_429']:.2%} (target <= 2%)"
    )
