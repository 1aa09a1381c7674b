"""Every knob of the tool, each with its one default: frozen, validated settings objects.

The defaults come from the service's documented limits (`limits`); errors name the field
(`SettingsError`), and the CLI maps fields to its flags. Tests shrink limits through these objects
instead of patching constants. Nothing here reads the environment or the command line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from orchestrator.errors import SettingsError
from orchestrator.limits import (
    FREE_TIER_RPS,
    JOB_TIMEOUT_SECONDS,
    MAX_JOB_SLOTS,
    MAX_REQUEST_BYTES,
)
from orchestrator.version import __version__

#: The smallest request limit that still leaves room for a useful users file.
MIN_REQUEST_BYTES: Final = 2_048
#: Characters allowed in an external_id prefix: they travel in a form field unescaped.
EXTERNAL_ID_PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
CONNECTION_ID_PATTERN: Final = re.compile(r"con_[A-Za-z0-9]{16}")
#: The request budget's bounds: below the floor a single job's polls would take hours; the ceiling is
#: far above any published tenant tier (reference §8: 16/s at most), room for a local rehearsal.
MIN_RPS: Final = 0.05
MAX_RPS: Final = 1000.0


def _require(ok: bool, name: str, value: object, problem: str) -> None:
    if not ok:
        raise SettingsError(name, value, problem)


def _whole(name: str, value: int, low: int, high: int | None = None) -> None:
    in_range = isinstance(value, int) and value >= low and (high is None or value <= high)
    wanted = f"from {low} to {high}" if high is not None else f"at least {low}"
    _require(in_range, name, value, f"must be a whole number {wanted}")


def _seconds(name: str, value: float, *, low: float = 0.0, inclusive: bool = False) -> None:
    ok = math.isfinite(value) and (value >= low if inclusive else value > low)
    _require(
        ok, name, value, f"must be a finite number of seconds {'>=' if inclusive else '>'} {low:g}"
    )


#: The source formats `--from` names (sources.formats has one adapter for each).
SOURCE_FORMATS: Final = (
    "import", "auth0-export", "firebase", "cognito", "keycloak", "django", "supabase", "csv",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """How the export is read into import-format users.

    Attributes:
        format: what the export is (`SOURCE_FORMATS`): `import` is the import format itself.
        fields: (import field, source field) pairs of a mapping: the import field (dotted into
            app_metadata or user_metadata) takes the source record's field or column (a dotted
            path reaches into JSON objects). They override the format's own mapping.
        constants: (import field, value) pairs: every user gets the value.
        only_connection: keep only the users of this database connection (a whole-tenant Auth0
            export); the others are skipped and counted.
        password_hashes: Auth0 support's password-hash export (NDJSON), joined to the users by id,
            else by email: the hashes a users export never holds.
    """

    format: str = "import"
    fields: tuple[tuple[str, str], ...] = ()
    constants: tuple[tuple[str, object], ...] = ()
    only_connection: str | None = None
    password_hashes: str | None = None

    def __post_init__(self) -> None:
        _require(
            self.format in SOURCE_FORMATS,
            "format",
            self.format,
            f"must be one of {', '.join(SOURCE_FORMATS)}",
        )
        _require(
            self.only_connection is None or self.format == "auth0-export",
            "only_connection",
            self.only_connection,
            "applies to an Auth0 users export only (--from auth0-export)",
        )

    @property
    def mapped(self) -> bool:
        """Whether the users are converted at all (not the import format read as it is)."""
        return self.format != "import" or bool(
            self.fields or self.constants or self.password_hashes
        )

    def as_json(self) -> dict[str, object]:
        """What a plan records of how its export was read."""
        return {
            "format": self.format,
            "fields": dict(self.fields),
            "constants": dict(self.constants),
            "only_connection": self.only_connection,
            "password_hashes": self.password_hashes,
        }


#: What a plan does with users who would arrive without a usable password (PlanSettings.passwords).
PASSWORD_POLICIES: Final = ("check", "allow", "require", "without")


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """What decides the content of the chunk files (recorded in the manifest, never changed).

    Attributes:
        max_request_bytes: largest whole request (multipart body included) a chunk may make.
        keep_user_id_prefix: keep a leading `auth0|` in user_id (the import adds it back otherwise).
        drop_unknown_fields: drop fields the import schema does not accept instead of rejecting.
        external_id_prefix: each job's external_id is `PREFIX-NNNNNN`; None picks `orch-<random>`
            when a plan is created.
        source: how the export is read (its format and mapping).
        passwords: what to do with users who would arrive without a usable password: `check`
            refuses the plan when its source can carry passwords (a first import is the only
            chance to set one), `allow` imports them without (they reset), `require` rejects them,
            `without` imports every user without a password (hashes removed, credential fields
            of the source may be dropped).
    """

    max_request_bytes: int = MAX_REQUEST_BYTES
    keep_user_id_prefix: bool = False
    drop_unknown_fields: bool = False
    external_id_prefix: str | None = None
    source: SourceSettings = field(default_factory=SourceSettings)
    passwords: str = "check"

    def __post_init__(self) -> None:
        _whole("max_request_bytes", self.max_request_bytes, MIN_REQUEST_BYTES, MAX_REQUEST_BYTES)
        prefix = self.external_id_prefix
        _require(
            prefix is None or EXTERNAL_ID_PREFIX_PATTERN.fullmatch(prefix) is not None,
            "external_id_prefix",
            prefix,
            "must be 1-64 letters, digits, '.', '_' or '-'",
        )
        _require(
            self.passwords in PASSWORD_POLICIES,
            "passwords",
            self.passwords,
            f"must be one of {', '.join(PASSWORD_POLICIES)}",
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    Attributes:
        attempts: tries in total, the first one included (1 = never retry).
        wait_initial: delay before the second try, in seconds; it doubles per try.
        wait_max: ceiling of the exponential delay, in seconds.
        jitter: relative spread, 0 <= jitter < 1: a delay d becomes d * (1 +/- jitter), so that
            clients that failed together do not come back together.
    """

    attempts: int = 6
    wait_initial: float = 0.5
    wait_max: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        _whole("attempts", self.attempts, 1)
        _seconds("wait_initial", self.wait_initial, inclusive=True)
        _require(
            self.wait_max >= self.wait_initial and math.isfinite(self.wait_max),
            "wait_max",
            self.wait_max,
            f"must be finite and >= wait_initial ({self.wait_initial:g})",
        )
        _require(0 <= self.jitter < 1, "jitter", self.jitter, "must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Knobs of the API client.

    Attributes:
        max_rps: the request budget per second, shared by every request (retries and token
            requests included). Rates >= 1 allow a burst of round(max_rps) requests at once, then
            max_rps per second, like Auth0's own token buckets (reference §8); below 1, no burst.
        request_timeout: seconds a whole request may take, upload and answer included.
        connect_timeout: seconds to establish the connection.
        retry: retries of GETs, the token request and rate-limited POSTs.
        token_refresh_margin: refresh a cached token this long before it expires (at the latest
            halfway through its lifetime, for tokens shorter than twice the margin).
        user_agent: sent with every request.
        max_server_wait: cap on one wait imposed by the server's rate-limit headers, so that a
            skewed clock cannot stall a run for hours.
        min_server_wait: floor of a wait after a rate-limit 429, whatever its headers say (a reset
            time already past on our clock must not turn into a burst of retries).
    """

    max_rps: float = FREE_TIER_RPS
    request_timeout: float = 60.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    token_refresh_margin: float = 60.0
    user_agent: str = f"orchestrator/{__version__}"
    max_server_wait: float = 60.0
    min_server_wait: float = 1.0

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.max_rps) and MIN_RPS <= self.max_rps <= MAX_RPS,
            "max_rps",
            self.max_rps,
            f"must be a number of requests per second from {MIN_RPS:g} to {MAX_RPS:g}",
        )
        for name in ("request_timeout", "connect_timeout", "max_server_wait"):
            _seconds(name, getattr(self, name))
        _seconds("token_refresh_margin", self.token_refresh_margin, inclusive=True)
        _seconds("min_server_wait", self.min_server_wait, inclusive=True)


@dataclass(frozen=True, slots=True)
class PollTiming:
    """Bounds of the delay between two looks at a running job, in seconds."""

    fine: float = 0.05  # the step once the predicted end has come
    coarse: float = 10.0  # the longest wait between two looks at a job
    first: float = 0.5  # the first look when nothing is known yet
    lead: float = 0.3  # how close to the predicted end polling turns fine

    def __post_init__(self) -> None:
        for name in ("fine", "coarse", "first", "lead"):
            _seconds(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class UploadSettings:
    """How chunks are sent and waited for.

    Attributes:
        connection_id: the target database connection.
        upsert: update users that already exist instead of failing them.
        send_completion_email: let Auth0 email every tenant owner about every job.
        job_slots: import jobs held at once; 0 = auto (start at the public-cloud 2 and let the
            service say whether it allows more).
        max_attempts: jobs per chunk before the chunk is marked failed.
        max_post_failures: consecutive POSTs of one chunk that may fail without an answer.
        max_poll_failures: polls of one job that may fail in a row (each after the client's own
            retries) before the run stops unfinished.
        job_timeout: a job running longer has hit the service's 2-hour timeout.
        slot_wait_initial, slot_wait_max: backoff while someone else holds the tenant's slots.
        post_grace: how long an interrupted run still waits for the answer to a POST already sent.
        post_retry_initial, post_retry_max: backoff between submissions of one chunk.
        poll: the polling delays.
        resolve_sample: users looked up first when a job's outcome is unknown (all of them
            unless none of the sample is in the tenant).
        resolve_tolerance: seconds before a chunk's first submission (carried to the service's
            clock by the least offset its answers allow) that a user's creation may be and still
            count as that chunk's, for clocks that drift.
        lookup_concurrency: user lookups in flight at once (the request budget sets the pace).
    """

    connection_id: str
    upsert: bool = False
    send_completion_email: bool = False
    job_slots: int = 0
    max_attempts: int = 3
    max_post_failures: int = 6
    max_poll_failures: int = 5
    job_timeout: float = JOB_TIMEOUT_SECONDS + 300.0
    slot_wait_initial: float = 1.0
    slot_wait_max: float = 30.0
    post_grace: float = 90.0
    post_retry_initial: float = 0.5
    post_retry_max: float = 30.0
    poll: PollTiming = field(default_factory=PollTiming)
    resolve_sample: int = 5
    resolve_tolerance: float = 0.25
    lookup_concurrency: int = 4

    def __post_init__(self) -> None:
        _require(
            CONNECTION_ID_PATTERN.fullmatch(self.connection_id) is not None,
            "connection_id",
            self.connection_id,
            "is not a connection id (con_ and 16 letters or digits)",
        )
        _whole("job_slots", self.job_slots, 0, MAX_JOB_SLOTS)
        _whole("max_attempts", self.max_attempts, 1, 100)
        _whole("max_post_failures", self.max_post_failures, 1)
        _whole("max_poll_failures", self.max_poll_failures, 1)
        _whole("resolve_sample", self.resolve_sample, 1)
        _whole("lookup_concurrency", self.lookup_concurrency, 1)
        _seconds("resolve_tolerance", self.resolve_tolerance, inclusive=True)
        for name in (
            "job_timeout",
            "slot_wait_initial",
            "slot_wait_max",
            "post_grace",
            "post_retry_initial",
            "post_retry_max",
        ):
            _seconds(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class PreflightSettings:
    """What the pre-flight requires and how patient it is.

    Attributes:
        need_read_users: missing `read:users` is a failure (verification asked), not a warning.
        clock_warn: seconds of clock offset from the service above which a warning is given.
        clock_fail: seconds above which the run is refused: rate-limit waits are computed from the
            service's UNIX times (`x-ratelimit-reset`), which a clock this far off misreads.
        retry: retries of the pre-flight's requests; fewer than a run's, so that an unreachable
            service is reported in seconds, not minutes.
    """

    need_read_users: bool = False
    clock_warn: float = 10.0
    clock_fail: float = 300.0
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=3, wait_initial=0.2, wait_max=1.0)
    )

    def __post_init__(self) -> None:
        _seconds("clock_warn", self.clock_warn)
        _require(
            self.clock_fail >= self.clock_warn,
            "clock_fail",
            self.clock_fail,
            f"must be >= clock_warn ({self.clock_warn:g})",
        )


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """How many imported users to look up, and how.

    Attributes:
        sample: users to look up (fewer when fewer were imported).
        concurrency: lookups in flight at once; the client's request budget sets the pace.
        seed: seed of the draw, for a reproducible sample; None draws a new one each time.
    """

    sample: int = 100
    concurrency: int = 4
    seed: int | None = None

    def __post_init__(self) -> None:
        _whole("sample", self.sample, 1)
        _whole("concurrency", self.concurrency, 1)


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Where a nightly sync keeps its state and its nights.

    Attributes:
        state: the SQLite state file (created by the first sync).
        runs_dir: where each night's run directory goes; None: `STATE.runs` beside the state.
        dry_run: classify only: send nothing, write nothing.
    """

    state: Path
    runs_dir: Path | None = None
    dry_run: bool = False

    @property
    def nights_dir(self) -> Path:
        return self.runs_dir or self.state.with_name(self.state.name + ".runs")
