"""A local Auth0-compatible server: the Management API's bulk-import endpoints, the token grant and
password logins that check each imported hash (passwords.py), with the real statuses, bodies and limits,
a deterministic job model, fault injection and a record of everything it saw. Used by
`orchestrator sandbox`, by the test-suite and by the benchmark.

Typical use in a test::

    async with SandboxServer(SandboxSettings(job_seconds=0.05, job_latency=0)) as server:
        server.state.faults.fail_jobs(1)
        ...  # talk to server.base_url
        assert server.state.peak_active_jobs <= 2
"""

from __future__ import annotations

from orchestrator.sandbox.cli import (
    add_arguments,
    describe,
    main,
    main_from_args,
    serve,
    settings_from_args,
)
from orchestrator.sandbox.connections import (
    CUSTOM_DB_CONNECTION_ID,
    DATABASE_CONNECTION_ID,
    DATABASE_CONNECTION_NAME,
    DISABLED_CONNECTION_ID,
    SOCIAL_CONNECTION_ID,
)
from orchestrator.sandbox.faults import Faults
from orchestrator.sandbox.jobs import JobRecord
from orchestrator.sandbox.runner import SandboxServer, SandboxThread
from orchestrator.sandbox.settings import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FaultPlan,
    RequestMatch,
    SandboxSettings,
)
from orchestrator.sandbox.state import RequestRecord, SandboxState
from orchestrator.sandbox.store import Summary

__all__ = [
    "CUSTOM_DB_CONNECTION_ID",
    "DATABASE_CONNECTION_ID",
    "DATABASE_CONNECTION_NAME",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DISABLED_CONNECTION_ID",
    "SOCIAL_CONNECTION_ID",
    "FaultPlan",
    "Faults",
    "JobRecord",
    "RequestMatch",
    "RequestRecord",
    "SandboxServer",
    "SandboxSettings",
    "SandboxState",
    "SandboxThread",
    "Summary",
    "add_arguments",
    "describe",
    "main",
    "main_from_args",
    "serve",
    "settings_from_args",
]
