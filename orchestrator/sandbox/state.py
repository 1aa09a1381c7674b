"""The sandbox tenant: connections, users, jobs, tokens, logins, the rate bucket, and the record of what
it saw.

Jobs advance lazily: every operation first finishes (by end time, then creation order) each job whose
end has passed and applies its users, so no background task is needed and the outcome depends only on
the clock. All mutation happens under one re-entrant lock, so a test thread may read the record and
arm faults while the server runs in another thread (SandboxThread).
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from orchestrator.sandbox.connections import Connection, default_connections
from orchestrator.sandbox.faults import FaultKind, Faults
from orchestrator.sandbox.jobs import Job, JobRecord, NewJob
from orchestrator.sandbox.ratelimit import RateDecision, TokenBucket
from orchestrator.sandbox.settings import SandboxSettings
from orchestrator.sandbox.store import Credential, UserStore
from orchestrator.sandbox.tokens import IssuedToken, TokenIssuer, UserTokens
from orchestrator.sandbox.users import JsonObject

_ALNUM = string.ascii_letters + string.digits
LOGIN_OK = "ok"
#: Why a password login failed, as the record counts them.
LOGIN_FAILURES = (
    "invalid_client",
    "unauthorized_client",
    "invalid_request",
    "access_denied",
    "unknown_realm",
    "wrong_credentials",
    "blocked",
    "cannot_verify",
)


class SlotsFull(Exception):
    """Every job slot is taken by a pending/processing job."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the sandbox answered; status 0 means the connection was dropped unanswered."""

    method: str
    path: str
    status: int
    t: float


class SandboxState:
    """The live tenant of one sandbox, its fault knobs (`faults`) and its record."""

    def __init__(
        self,
        settings: SandboxSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self._clock = clock
        self._epoch = clock()
        self._wall_epoch = wall_clock()
        #: Set by the server once it is bound; audiences and the token issuer derive from it.
        self.base_url = ""
        self.faults = Faults(self.lock, settings.seed)
        self.faults.arm(settings.faults)
        self._ids = random.Random(settings.seed)
        self._tokens = TokenIssuer(
            lifetime=settings.token_lifetime,
            static_token=settings.static_token,
            scopes=settings.scopes,
        )
        size, rate = settings.bucket_size, settings.rate_limit_per_second
        self._bucket = (
            None
            if size is None or rate is None
            else TokenBucket(size=size, rate=rate, now=self._epoch)
        )
        self.connections = {c.id: c for c in default_connections()}
        self._store = UserStore(settings.user_store, random.Random(settings.seed + 1))
        self._jobs: dict[str, Job] = {}
        self._history: list[Job] = []
        self._active: list[Job] = []
        self._requests: list[RequestRecord] = []
        self._too_many: Counter[str] = Counter()
        self._logins: Counter[str] = Counter()
        self._request_count = 0
        self._peak_active = 0

    # -- clock -------------------------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox clock (monotonic by default)."""
        return self._clock()

    def elapsed(self) -> float:
        """Seconds since the sandbox started: the time base of the record."""
        return self._clock() - self._epoch

    def wall(self, t: float) -> float:
        """UNIX time of sandbox-clock instant `t` on the sandbox's wall clock (`clock_offset` added)."""
        return self._wall_epoch + (t - self._epoch) + self.settings.clock_offset

    def wall_now(self) -> float:
        return self.wall(self._clock())

    def iso(self, t: float) -> str:
        moment = datetime.fromtimestamp(self.wall(t), tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    # -- jobs --------------------------------------------------------------------------------------

    def advance(self) -> float:
        """Finish every job whose end has passed; returns the instant used."""
        with self.lock:
            now = self._clock()
            due = sorted((j for j in self._active if j.end <= now), key=lambda j: (j.end, j.seq))
            for job in due:
                self._finish(job)
            if due:
                self._active = [j for j in self._active if not j.finished]
            return now

    def _finish(self, job: Job) -> None:
        if job.failure is None and job.users is not None:
            job.summary, job.failures = self._store.import_users(
                job.users,
                connection=job.connection.name,
                upsert=job.upsert,
                faults=self.faults,
                now_iso=self.iso(job.end),
            )
        job.users = None  # the outcome is all that is kept: memory stays flat in long benchmarks
        job.finished = True

    def create_job(self, new: NewJob) -> tuple[Job, dict[str, object]]:
        """Create a job if a slot is free; returns it and the 202 body.

        Raises:
            SlotsFull: `job_slots` jobs are pending or processing.
        """
        with self.lock:
            now = self.advance()
            if len(self._active) >= self.settings.job_slots:
                raise SlotsFull
            forced = self.faults.take(FaultKind.FAIL_JOB)
            users = new.parsed.users
            count = 0 if users is None else len(users)
            start = now + self.settings.job_latency
            duration = self.settings.job_seconds + self.settings.job_seconds_per_user * count
            job = Job(
                seq=len(self._history),
                id=self._new_job_id(),
                connection=new.connection,
                upsert=new.upsert,
                send_completion_email=new.send_completion_email,
                external_id=new.external_id,
                request_bytes=new.request_bytes,
                created=now,
                created_at=self.iso(now),
                start=start,
                end=start + duration,
                users=users,
                user_count=count,
                emails=new.parsed.emails,
                failure=new.parsed.failure or (forced.details if forced else None),
            )
            self._jobs[job.id] = job
            self._history.append(job)
            self._active.append(job)
            self._peak_active = max(self._peak_active, len(self._active))
            return job, job.created_json()

    def _new_job_id(self) -> str:
        while True:
            job_id = "job_" + "".join(self._ids.choices(_ALNUM, k=16))
            if job_id not in self._jobs:
                return job_id

    def _live_job(self, job_id: str) -> tuple[Job, float] | None:
        now = self.advance()
        job = self._jobs.get(job_id)
        if job is None:
            return None
        if job.finished and now >= job.created + self.settings.retention:
            del self._jobs[job_id]  # job data is deleted after 24 h (reference §6)
            return None
        return job, now

    def job_json(self, job_id: str) -> dict[str, object] | None:
        """GET /jobs/{id}: the body, or None for an unknown (or deleted) job."""
        with self.lock:
            live = self._live_job(job_id)
            return None if live is None else live[0].to_json(live[1], self.settings.expire_after)

    def job_errors(self, job_id: str) -> list[JsonObject] | dict[str, object] | None:
        """GET /jobs/{id}/errors: the array, the generic object, [] for "204", None for unknown."""
        with self.lock:
            live = self._live_job(job_id)
            if live is None:
                return None
            job = live[0]
            if job.finished and job.failure is not None and self.faults.errors_generic_form:
                return job.generic_error_body()
            return list(job.failures)

    # -- tokens, rate limit, users -------------------------------------------------------------------

    def issue_token(self, *, client_id: str, audience: str) -> IssuedToken:
        with self.lock:
            now = self._clock()
            return self._tokens.issue(
                now=now,
                wall=self.wall(now),
                client_id=client_id,
                audience=audience,
                issuer=f"{self.base_url}/",
                scopes=" ".join(self.settings.scopes),
            )

    def verify_token(self, token: str) -> frozenset[str]:
        """The scopes of a valid token; raises TokenRejected otherwise."""
        with self.lock:
            return self._tokens.verify(token, self._clock())

    def revoke_tokens(self) -> int:
        """Fault `expire_tokens`: every token issued so far now gets 401."""
        with self.lock:
            self.faults.fired["expire_tokens"] += 1
            return self._tokens.revoke_all()

    def take_rate(self) -> RateDecision | None:
        """Spend one request of the bucket; None when the sandbox is not rate limited."""
        with self.lock:
            return None if self._bucket is None else self._bucket.take(self._clock())

    def users_by_email(self, email: str) -> list[JsonObject]:
        with self.lock:
            self.advance()
            return [dict(profile) for profile in self._store.by_email(email)]

    def age_users(self, seconds: float) -> None:
        """Make every stored user `seconds` older (created_at, updated_at): a test's next night
        then begins a day after the last one wrote them, without waiting for it."""
        with self.lock:
            self.advance()
            self._store.age(seconds)

    # -- connections and logins --------------------------------------------------------------------

    def connection_named(self, name: str) -> Connection | None:
        return next((c for c in self.connections.values() if c.name == name), None)

    def login_credential(self, realm: str, email: str) -> tuple[JsonObject, Credential] | None:
        """A copy of the profile and the credential of `email` in connection `realm`, if stored."""
        with self.lock:
            self.advance()
            found = self._store.credential(realm, email)
            return None if found is None else (dict(found[0]), found[1])

    def record_login_failure(self, reason: str) -> None:
        """Count a refused password login by reason (one of LOGIN_FAILURES)."""
        with self.lock:
            self._logins[reason] += 1

    def complete_login(
        self, *, realm: str, profile: JsonObject, client_id: str, audience: str, scope: str
    ) -> UserTokens:
        """Count a successful login, mark the user's hash as used, and issue its tokens."""
        with self.lock:
            self._logins[LOGIN_OK] += 1
            self._store.mark_used(realm, str(profile["email"]))
            return self._tokens.issue_user(
                wall=self.wall_now(),
                client_id=client_id,
                client_secret=self.settings.client_secret,
                audience=audience,
                issuer=f"{self.base_url}/",
                scope=scope,
                profile=profile,
            )

    # -- the record ------------------------------------------------------------------------------------

    def record_request(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self._request_count += 1
            if self.settings.record_requests:
                self._requests.append(RequestRecord(method, path, status, self.elapsed()))

    def count_too_many(self, kind: str) -> None:
        """Count a 429 by kind: "rate_limit", "injected_rate_limit" or "job_slots"."""
        with self.lock:
            self._too_many[kind] += 1

    @property
    def request_count(self) -> int:
        with self.lock:
            return self._request_count

    @property
    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._requests)

    @property
    def too_many_requests(self) -> dict[str, int]:
        """429s answered, by kind."""
        with self.lock:
            kinds = ("rate_limit", "injected_rate_limit", "job_slots")
            return {kind: self._too_many[kind] for kind in kinds}

    @property
    def logins(self) -> dict[str, int]:
        """Password logins: {"ok": n, "failed": n}."""
        with self.lock:
            failed = sum(self._logins[reason] for reason in LOGIN_FAILURES)
            return {"ok": self._logins[LOGIN_OK], "failed": failed}

    @property
    def login_failures(self) -> dict[str, int]:
        """Refused password logins, by reason."""
        with self.lock:
            return {reason: self._logins[reason] for reason in LOGIN_FAILURES}

    @property
    def peak_active_jobs(self) -> int:
        with self.lock:
            return self._peak_active

    @property
    def active_jobs(self) -> int:
        with self.lock:
            self.advance()
            return len(self._active)

    @property
    def user_count(self) -> int:
        with self.lock:
            self.advance()
            return self._store.count

    @property
    def tokens_issued(self) -> int:
        with self.lock:
            return self._tokens.issued

    def jobs(self) -> list[JobRecord]:
        """Every job ever created, in creation order (deleted ones show status "deleted")."""
        with self.lock:
            now = self.advance()
            return [self._record(job, now) for job in self._history]

    def _record(self, job: Job, now: float) -> JobRecord:
        record = job.record(now, self.settings.expire_after, self._epoch)
        gone = job.finished and now >= job.created + self.settings.retention
        return replace(record, status="deleted") if gone else record

    def slot_intervals(self) -> list[tuple[float, float]]:
        """[created, terminal] of every job: the time each held a job slot."""
        return [(job.created, job.ended) for job in self.jobs()]

    def snapshot(self, *, include_requests: bool = True) -> dict[str, object]:
        """The record as JSON-able data, for GET /sandbox/state."""
        with self.lock:
            jobs = [job.to_json() for job in self.jobs()]
            return {
                "now": self.elapsed(),
                "jobs": jobs,
                "requests": (
                    [[r.method, r.path, r.status, r.t] for r in self._requests]
                    if include_requests
                    else None
                ),
                "request_count": self._request_count,
                "too_many_requests": self.too_many_requests,
                "peak_active_jobs": self._peak_active,
                "active_jobs": len(self._active),
                "users_stored": self._store.count,
                "tokens_issued": self._tokens.issued,
                "logins": {**self.logins, "failed_by_reason": self.login_failures},
                "faults": self.faults.pending(),
                "faults_fired": dict(self.faults.fired),
            }
