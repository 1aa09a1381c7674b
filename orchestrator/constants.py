"""Documented limits of the Auth0 bulk-import API, used as the defaults of settings.

Sources are in ../shared/reference/auth0-bulk-import-api.md (section numbers below).
"""

from __future__ import annotations

from typing import Final

#: Largest request body the service accepts on POST users-imports, multipart included (§2, OAS 413).
MAX_REQUEST_BYTES: Final = 512_000
#: Import jobs a public-cloud tenant may have pending/processing at once (§3).
DEFAULT_JOB_SLOTS: Final = 2
#: Default request budget, requests per second: the Free tier's sustained rate (§8).
DEFAULT_MAX_RPS: Final = 2.0
#: Times a chunk is submitted before it is marked failed (SPEC).
DEFAULT_MAX_ATTEMPTS: Final = 3
#: A job still running after this long has hit the service's timeout (§6).
JOB_TIMEOUT_SECONDS: Final = 2 * 60 * 60
#: Job data (status, errors) is deleted after this long (§6).
JOB_RETENTION_SECONDS: Final = 24 * 60 * 60

IMPORTS_PATH: Final = "/api/v2/jobs/users-imports"
JOB_STATES_ACTIVE: Final = frozenset({"pending", "processing"})
JOB_STATES_TERMINAL: Final = frozenset({"completed", "failed", "expired"})
#: A 429 whose message contains this is the job-slot limit, not the rate limit (§3).
SLOTS_BUSY_MARKER: Final = "active import users jobs"
