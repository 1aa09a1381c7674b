"""The service's documented limits and figures, each with its source.

Sources are in ../shared/reference/auth0-bulk-import-api.md (section numbers below). Settings take
their defaults from here; nothing else restates these numbers.
"""

from __future__ import annotations

from typing import Final

#: Largest request body the service accepts on POST users-imports, multipart included (§2, OAS 413).
MAX_REQUEST_BYTES: Final = 512_000
#: Import jobs a public-cloud tenant may have pending/processing at once (§3).
PUBLIC_CLOUD_JOB_SLOTS: Final = 2
#: The most job slots any deployment is known to allow: private cloud, up to 20 (§3).
MAX_JOB_SLOTS: Final = 20
#: The Free tier's sustained Management API rate, requests per second (§8).
FREE_TIER_RPS: Final = 2.0
#: A job still running after this long has hit the service's timeout (§6).
JOB_TIMEOUT_SECONDS: Final = 2 * 60 * 60
#: Job data (status, errors) is deleted after this long (§6).
JOB_RETENTION_SECONDS: Final = 24 * 60 * 60
#: Users per hour of a bulk import with 2 jobs in parallel: ~400k/h on an enterprise tenant, about
#: ten times less on the free tier (§13).
ENTERPRISE_USERS_PER_HOUR: Final = 400_000
FREE_TIER_USERS_PER_HOUR: Final = 40_000

IMPORTS_PATH: Final = "/api/v2/jobs/users-imports"
JOB_STATES_ACTIVE: Final = frozenset({"pending", "processing"})
JOB_STATES_TERMINAL: Final = frozenset({"completed", "failed", "expired"})
#: A 429 whose message contains this is the job-slot limit, not the rate limit (§3).
SLOTS_BUSY_MARKER: Final = "active import users jobs"
#: `connection_id` always matches this (§1).
CONNECTION_ID_PATTERN: Final = r"^con_[A-Za-z0-9]{16}$"
