"""What a run directory says about its run, at any moment (even while the run goes on)."""

from __future__ import annotations

from orchestrator.results.report import ambiguous_resubmissions, job_totals
from orchestrator.rundir.manifest import Manifest


def status_summary(manifest: Manifest, live: dict[str, str]) -> dict[str, object]:
    """Chunks by state, users planned and imported, and every job sent.

    Args:
        manifest: the run's state.
        live: job id -> its live status at Auth0, for the jobs asked about (`--refresh`).
    """
    by_status: dict[str, int] = {}
    for chunk in manifest.chunks:
        by_status[chunk.status] = by_status.get(chunk.status, 0) + 1
    return {
        "run_id": manifest.run_id,
        "input": manifest.input.path,
        "connection_id": manifest.settings.connection_id,
        "chunks": len(manifest.chunks),
        "chunks_by_status": by_status,
        "users_planned": manifest.totals.users_accepted,
        "rejected_locally": manifest.totals.users_rejected,
        **job_totals(manifest.chunks),
        "ambiguous_resubmissions": ambiguous_resubmissions(manifest),
        "jobs": [
            {
                "chunk": c.index,
                "external_id": c.external_id,
                "status": c.status,
                "job_id": c.job_id,
                **({"live_status": live[c.job_id]} if c.job_id in live else {}),
            }
            for c in manifest.chunks
            if c.job_id or c.status not in ("planned",)
        ],
    }
