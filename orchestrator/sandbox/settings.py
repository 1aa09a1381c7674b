"""Settings of the sandbox: the tenant's credentials, grants, limits, job timing and clock, and the faults
armed at start.

Everything a test needs to shrink (job duration, limits, token lifetime) is a field here; the defaults are
the real service's documented values (reference §2, §3, §6, §9) or short, demo-friendly job timings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from orchestrator.errors import ConfigError
from orchestrator.limits import (
    JOB_RETENTION_SECONDS,
    MAX_REQUEST_BYTES,
    PUBLIC_CLOUD_JOB_SLOTS,
)

#: Hosts the sandbox may bind: it is a rehearsal server holding fake credentials, never a public one.
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
DEFAULT_CLIENT_ID: Final = "SandboxClientId0000000000000001"
DEFAULT_CLIENT_SECRET: Final = "sandbox-client-secret-for-local-rehearsals-only"
DEFAULT_SCOPES: Final = ("create:users", "read:users", "read:connections")
#: The old guide's `expired` state: completed jobs created more than 2 hours ago (reference §6).
DEFAULT_EXPIRE_AFTER: Final = 2 * 60 * 60
DEFAULT_JOB_FAILURE_DETAILS: Final = "An internal error occurred while processing the job"
#: Per-user error codes the import documents (reference §5); a poisoned user may fail with any of them.
USER_ERROR_CODES: Final = frozenset(
    {
        "ANY_OF_MISSING", "ARRAY_LENGTH_LONG", "ARRAY_LENGTH_SHORT", "CONFLICT", "CONFLICT_EMAIL",
        "CONFLICT_USERNAME", "CONNECTION_NOT_FOUND", "DUPLICATED_USER", "ENUM_MISMATCH", "FORMAT",
        "INVALID_TYPE", "MAX_LENGTH", "MAXIMUM", "MFA_FACTORS_FAILED", "MIN_LENGTH", "MINIMUM",
        "NOT_PASSED", "OBJECT_REQUIRED", "PATTERN", "PROFILE_SIZE_EXCEEDED",
    }
)  # fmt: skip
_SCOPE_PATTERN: Final = re.compile(r"^[a-z_]+:[a-z_]+$")

UserStoreMode = Literal["full", "keys", "none"]


@dataclass(frozen=True, slots=True)
class RequestMatch:
    """Which requests a request fault applies to: every request, or one method and/or path prefix."""

    method: str | None = None
    path_prefix: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and method.upper() != self.method.upper():
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Faults armed when the sandbox starts; `SandboxState.faults` arms more at run time.

    Counts are "the next N matching requests/jobs"; they are consumed in arrival order.
    """

    fail_requests: int = 0
    fail_requests_status: int = 503
    fail_requests_match: RequestMatch = RequestMatch()
    reset_requests: int = 0
    reset_requests_match: RequestMatch = RequestMatch()
    reset_after_create: int = 0
    fail_jobs: int = 0
    fail_jobs_details: str = DEFAULT_JOB_FAILURE_DETAILS
    rate_limit_429s: int = 0
    rate_limit_429s_match: RequestMatch = RequestMatch()
    #: Extra seconds before every answer; with latency_max, a seeded uniform draw in [latency, max].
    latency: float = 0.0
    latency_max: float | None = None
    #: Emails a job counts as inserted but that never reach the user store (verification tests).
    lose_users: frozenset[str] = frozenset()
    #: Email -> error code: the job fails exactly these users with that code.
    poisoned_users: Mapping[str, str] = field(default_factory=dict)
    #: Answer GET /jobs/{id}/errors of a failed job with the generic object form instead of 204.
    errors_generic_form: bool = False
    #: The next N JSON error answers of the Management API quote the request's bearer token in their
    #: `message`, as some proxies do (tests of the client's redaction).
    echo_token_errors: int = 0

    def __post_init__(self) -> None:
        counts = (self.fail_requests, self.reset_requests, self.reset_after_create)
        if min((*counts, self.fail_jobs, self.rate_limit_429s, self.echo_token_errors)) < 0:
            raise ConfigError("sandbox fault counts must be >= 0")
        if not 500 <= self.fail_requests_status <= 599:
            raise ConfigError("--fail-status must be a 5xx status")
        if self.latency < 0 or (self.latency_max is not None and self.latency_max < self.latency):
            raise ConfigError("sandbox latency must be >= 0 and latency_max >= latency")
        unknown = set(self.poisoned_users.values()) - USER_ERROR_CODES
        if unknown:
            raise ConfigError(f"unknown user error code(s) for poisoned users: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """Everything that shapes one sandbox tenant.

    Job timing: a job is `pending` for `job_latency` seconds, then `processing` for
    `job_seconds + job_seconds_per_user * users`, then terminal. Rate limit: a token bucket of
    `rate_limit_burst` refilled at `rate_limit_per_second`; `rate_limit_per_second=None` means unlimited
    (and no `x-ratelimit-*` headers). `user_store` trades realism for memory in benchmarks: "full" keeps
    profiles (users-by-email works), "keys" keeps only the keys duplicates are detected on, "none" keeps
    nothing (every valid user is inserted).
    """

    host: str = "127.0.0.1"
    port: int = 0
    domain: str = "sandbox.local"
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    #: False: the client has no grant for the Management API (the token endpoint answers 403).
    client_granted: bool = True
    #: Whether the application may use the password-realm grant (user logins at POST /oauth/token).
    password_grant: bool = True
    #: A Management API token accepted as-is, like one pasted from the dashboard (never expires).
    static_token: str | None = field(default=None, repr=False)
    token_lifetime: float = 86_400.0
    job_slots: int = PUBLIC_CLOUD_JOB_SLOTS
    job_latency: float = 0.5
    job_seconds: float = 1.0
    job_seconds_per_user: float = 0.0
    expire_after: float = DEFAULT_EXPIRE_AFTER
    retention: float = JOB_RETENTION_SECONDS
    max_request_bytes: int = MAX_REQUEST_BYTES
    rate_limit_per_second: float | None = None
    rate_limit_burst: int | None = None
    #: Whether POST /oauth/token draws from the same bucket as the Management API.
    rate_limit_token_endpoint: bool = True
    #: Add `Retry-After` (seconds) to rate-limit 429s; the real Management API usually omits it (§8).
    rate_limit_retry_after: bool = False
    user_store: UserStoreMode = "full"
    #: Keep every job's user emails and every request in the record (turn off for huge benchmarks).
    record_emails: bool = True
    record_requests: bool = True
    faults: FaultPlan = FaultPlan()
    #: Seeds job ids, generated user ids and random latency: same seed, same run.
    seed: int = 0
    #: Seconds added to the sandbox's wall clock: the `Date` header, `x-ratelimit-reset`, token times
    #: and every `created_at` follow it (a server whose clock is off, for clock-skew checks).
    clock_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"the sandbox binds loopback only (127.0.0.1, ::1), not {self.host!r}"
            )
        if not 0 <= self.port <= 65_535:
            raise ConfigError(f"sandbox port out of range: {self.port}")
        if not self.client_id or not self.client_secret:
            raise ConfigError("sandbox client id and secret must not be empty")
        bad = [scope for scope in self.scopes if not _SCOPE_PATTERN.match(scope)]
        if bad:
            raise ConfigError(f"malformed scope(s): {bad}")
        self._check_numbers()

    def _check_numbers(self) -> None:
        if self.job_slots < 1 or self.max_request_bytes < 1:
            raise ConfigError("job_slots and max_request_bytes must be >= 1")
        timings = (self.job_latency, self.job_seconds, self.job_seconds_per_user)
        if min(timings) < 0 or self.token_lifetime <= 0:
            raise ConfigError("job timings must be >= 0 and token_lifetime > 0")
        if self.expire_after <= 0 or self.retention <= 0:
            raise ConfigError("expire_after and retention must be > 0")
        rate = self.rate_limit_per_second
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ConfigError("rate_limit_per_second must be > 0 (or None for unlimited)")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ConfigError("rate_limit_burst must be >= 1")
        if not math.isfinite(self.clock_offset):
            raise ConfigError("clock_offset must be a finite number of seconds")

    @property
    def bucket_size(self) -> int | None:
        """The rate-limit bucket size, or None when unlimited (burst defaults to one second's worth)."""
        if self.rate_limit_per_second is None:
            return None
        if self.rate_limit_burst is not None:
            return self.rate_limit_burst
        return max(1, math.ceil(self.rate_limit_per_second))
