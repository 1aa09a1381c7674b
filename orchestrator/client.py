"""The only door to the Auth0 Management API: every HTTP request of the tool goes through `ApiClient`.

Owns the aiohttp session, the shared request budget (aiolimiter plus the server's rate-limit headers),
tokens, retries, and the translation of aiohttp exceptions and HTTP statuses into `orchestrator.errors`.
No other module imports aiohttp; callers see only the types and exceptions defined here and there.
"""

from __future__ import annotations

import base64
import email.utils
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from importlib import metadata
from types import TracebackType
from typing import Final, Self
from urllib.parse import quote

import aiohttp
import anyio
import orjson
from aiolimiter import AsyncLimiter

from orchestrator.constants import DEFAULT_MAX_RPS, IMPORTS_PATH, SLOTS_BUSY_MARKER
from orchestrator.credentials import Credentials
from orchestrator.errors import (
    ApiError,
    ApiStatusError,
    AuthError,
    ConfigError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    SlotsBusyError,
    TransportError,
)
from orchestrator.multipart import ImportFields, content_type, encode_import_body, new_boundary
from orchestrator.retry import RetryPolicy, retry_delay

TOKEN_PATH: Final = "/oauth/token"
JOBS_PATH: Final = "/api/v2/jobs"
CONNECTIONS_PATH: Final = "/api/v2/connections"
USERS_BY_EMAIL_PATH: Final = "/api/v2/users-by-email"
#: "There are 2 active import users jobs, please wait ..." (reference §3).
_ACTIVE_JOBS: Final = re.compile(r"there are (\d+) active", re.IGNORECASE)
#: Below this, x-ratelimit-reset cannot be a UNIX time (2001-09-09): read it as seconds from now.
_EPOCH_FLOOR: Final = 1e9
_MESSAGE_LIMIT: Final = 300
_SCOPE_HELP: Final = (
    "grant the missing scope to the application in the Auth0 dashboard (APIs > Auth0 Management "
    "API > Machine to Machine Applications; the tool needs create:users, read:users and "
    "read:connections), then use a new token"
)
_GRANT_HELP: Final = (
    "check AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET, and that the application is authorized "
    "(has a client grant) for the Auth0 Management API"
)


def _version() -> str:
    try:
        return metadata.version("orchestrator")
    except metadata.PackageNotFoundError:
        return "0"


EventSink = Callable[[str, Mapping[str, object]], None]
"""Receives (event name, fields) for logs and progress; fields never hold secrets."""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Knobs of the API client; tests shrink them.

    Attributes:
        max_rps: The request budget per second, shared by every request (retries and token requests
            included). Rates >= 1 allow a burst of round(max_rps) requests at once, then max_rps per
            second, like Auth0's own token buckets (reference §8); below 1 there is no burst.
        request_timeout: Seconds a whole request may take, upload and answer included.
        connect_timeout: Seconds to establish the connection.
        retry: Retries of GETs, the token request and rate-limited POSTs.
        token_refresh_margin: Refresh a cached token this long before it expires (at the latest
            halfway through its lifetime, for tokens shorter than twice the margin).
        user_agent: Sent with every request.
        max_server_wait: Cap on one wait imposed by the server's rate-limit headers, so that a
            skewed clock cannot stall a run for hours.
    """

    max_rps: float = DEFAULT_MAX_RPS
    request_timeout: float = 60.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    token_refresh_margin: float = 60.0
    user_agent: str = f"orchestrator/{_version()}"
    max_server_wait: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_rps", "request_timeout", "connect_timeout", "max_server_wait"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"client setting {name} must be > 0, got {getattr(self, name)}")
        if self.token_refresh_margin < 0:
            raise ConfigError(
                f"client setting token_refresh_margin must be >= 0, got {self.token_refresh_margin}"
            )


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as GET /jobs/{id} (or the create answer) describes it."""

    id: str
    status: str
    external_id: str | None
    created_at: str | None
    summary: dict[str, int] | None
    percentage_done: int | None
    time_left_seconds: int | None
    status_details: str | None


@dataclass(frozen=True, slots=True)
class UserError:
    """One user the service refused, as echoed by GET /jobs/{id}/errors (hashes come back redacted).

    ``errors`` items have ``code`` and ``message``, and ``path`` when the service gives one.
    """

    user: dict[str, object]
    errors: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the current token allows.

    Attributes:
        scopes: Granted scopes, from the grant's ``scope`` field or the JWT's ``scope`` claim.
        expires_at: UNIX time the token expires, if known.
        source: ``"static"`` (AUTH0_TOKEN) or ``"client_credentials"``.
        scopes_known: False when the token is opaque and the grant said nothing: ``scopes`` is
            then empty for lack of information, not because nothing was granted.
    """

    scopes: frozenset[str]
    expires_at: float | None
    source: str
    scopes_known: bool = True


@dataclass(slots=True)
class RequestStats:
    """Counters of everything the client did; plain numbers, safe to read at any time.

    Attributes:
        requests_sent: HTTP requests started (retries and token requests included).
        answers_by_status: HTTP answers received, by status code.
        transport_errors: Requests that got no HTTP answer.
        rate_limited: Rate-limit 429s.
        slots_busy: Job-slot 429s ("N active import users jobs").
        retries: Requests repeated after a failure (token refreshes after a 401 not included).
        token_requests: Client-credentials grants requested.
        rate_limit_wait_seconds: Seconds requests spent waiting for the budget (local limiter and
            server-imposed waits), summed over requests.
    """

    requests_sent: int = 0
    answers_by_status: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    rate_limited: int = 0
    slots_busy: int = 0
    retries: int = 0
    token_requests: int = 0
    rate_limit_wait_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class _Answer:
    """A 2xx answer: its status and parsed JSON (None when empty)."""

    status: int
    body: object


@dataclass(frozen=True, slots=True)
class _Raw:
    """What one HTTP exchange returned, before interpretation."""

    status: int
    content: bytes
    retry_after: str | None
    remaining: str | None
    reset: str | None


def limiter_shape(max_rps: float) -> tuple[float, float]:
    """``(max_rate, time_period)`` of the AsyncLimiter that holds ``max_rps`` requests per second.

    AsyncLimiter lets ``max_rate`` requests through at once, then refills at max_rate/time_period.
    A fractional rate becomes one request per 1/rps seconds (no burst); a rate >= 1 becomes
    round(rps) per second, i.e. a burst of round(rps) on top of the sustained rate.
    """
    if max_rps < 1:
        return 1.0, 1.0 / max_rps
    return float(round(max_rps)), 1.0


class ApiClient:
    """Async client for the few Management API calls the tool makes.

    Use as ``async with ApiClient(credentials, settings) as client:``; the aiohttp session, the rate
    limiter and the token lock are created on entry (they are bound to the running event loop).
    Safe to share between tasks: they all draw from one request budget and one cached token.
    """

    def __init__(
        self,
        credentials: Credentials,
        settings: ClientSettings,
        *,
        events: EventSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._credentials = credentials
        self._settings = settings
        self._events = events
        self._rng = rng if rng is not None else random.Random()
        self._base_url = credentials.base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._limiter: AsyncLimiter | None = None
        self._token_lock: anyio.Lock | None = None
        self._token: str | None = None
        self._token_refresh_at = 0.0  # monotonic
        self._token_expires_at: float | None = None  # UNIX time
        self._grant_scope: str | None = None
        # Shared "no request starts before" time (monotonic), set from the server's rate-limit
        # headers so that one 429 pauses every task, not just the one that received it.
        self._not_before = 0.0
        self.stats = RequestStats()
        #: Server clock minus local clock (seconds), from the HTTP Date header of the latest answer
        #: that carried one; None before that. Read by the pre-flight clock check.
        self.server_clock_offset: float | None = None

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("ApiClient is already open")
        max_rate, period = limiter_shape(self._settings.max_rps)
        self._limiter = AsyncLimiter(max_rate, period)
        self._token_lock = anyio.Lock()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=self._settings.request_timeout, sock_connect=self._settings.connect_timeout
            ),
            headers={"User-Agent": self._settings.user_agent, "Accept": "application/json"},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- public calls ---------------------------------------------------------------------------

    async def create_import_job(self, users_json: bytes, fields: ImportFields) -> JobInfo:
        """POST /api/v2/jobs/users-imports with one chunk of users.

        Only a rate-limit 429 (which proves no job was created) is retried here; the caller owns
        resubmission, because a failed POST may still have created a job.

        Args:
            users_json: The chunk file's bytes: a JSON array of users.
            fields: connection_id, upsert, external_id and send_completion_email.

        Returns:
            The new job (status ``pending``).

        Raises:
            SlotsBusyError: every job slot of the tenant is taken; wait for one and resubmit.
            TransportError: no answer; ``maybe_processed`` says whether a job may exist.
            ServerError: a 5xx; a job may or may not exist.
            RequestRejectedError: 400 (bad connection or body) or 413 (too large).
            AuthError: token refused twice or scope missing.
            RateLimitedError: still rate-limited after every retry.
        """
        boundary = new_boundary()
        answer = await self._call(
            "POST",
            IMPORTS_PATH,
            payload=encode_import_body(users_json, fields, boundary),
            payload_type=content_type(boundary),
            idempotent=False,
        )
        return self._job_info("POST", IMPORTS_PATH, answer)

    async def get_job(self, job_id: str) -> JobInfo:
        """GET /api/v2/jobs/{id}, retried on transport errors, 5xx and rate limits.

        Raises:
            RequestRejectedError: 404 when the job does not exist (or was deleted after 24 h).
            AuthError, ApiError: as for every call, once retries are used up.
        """
        path = f"{JOBS_PATH}/{_segment(job_id)}"
        return self._job_info("GET", path, await self._call("GET", path))

    async def get_job_errors(self, job_id: str) -> list[UserError] | JobInfo | None:
        """GET /api/v2/jobs/{id}/errors.

        Returns:
            The per-user errors; None on 204 (no errors recorded, also seen for failed jobs); a
            JobInfo when the service answers with the generic job object instead of a list.
        """
        path = f"{JOBS_PATH}/{_segment(job_id)}/errors"
        answer = await self._call("GET", path)
        if answer.status == 204 or answer.body is None:
            return None
        if isinstance(answer.body, dict):
            return self._job_info("GET", path, answer)
        if not isinstance(answer.body, list):
            raise _malformed("GET", path, answer.status, "a list of user errors")
        return [_user_error("GET", path, answer.status, item) for item in answer.body]

    async def get_connection(self, connection_id: str) -> dict[str, object]:
        """GET /api/v2/connections/{id}: the connection object as the service returns it."""
        path = f"{CONNECTIONS_PATH}/{_segment(connection_id)}"
        answer = await self._call("GET", path)
        if not isinstance(answer.body, dict):
            raise _malformed("GET", path, answer.status, "a connection object")
        return answer.body

    async def users_by_email(self, email: str) -> list[dict[str, object]]:
        """GET /api/v2/users-by-email?email=...: every user with that address (any connection)."""
        answer = await self._call("GET", USERS_BY_EMAIL_PATH, params={"email": email})
        body = answer.body
        if not isinstance(body, list) or not all(isinstance(user, dict) for user in body):
            raise _malformed("GET", USERS_BY_EMAIL_PATH, answer.status, "a list of users")
        return body

    async def token_info(self) -> TokenInfo:
        """The current token's scopes and expiry, obtaining a token first if needed.

        Scopes come from the grant's ``scope`` field, else from the JWT payload's ``scope`` claim
        (decoded, not verified: this is a pre-flight hint, the service has the final word).
        """
        token = await self._access_token()
        claims = _jwt_claims(token)
        scope = self._grant_scope if self._credentials.uses_client_credentials else None
        scopes_known = scope is not None
        if scope is None and claims is not None:
            claimed = claims.get("scope", claims.get("permissions"))
            if isinstance(claimed, str):
                scope, scopes_known = claimed, True
            elif isinstance(claimed, list):
                scope, scopes_known = " ".join(str(s) for s in claimed), True
        expires_at = self._token_expires_at
        exp = claims.get("exp") if claims is not None else None
        if expires_at is None and isinstance(exp, int | float) and not isinstance(exp, bool):
            expires_at = float(exp)
        return TokenInfo(
            scopes=frozenset((scope or "").split()),
            expires_at=expires_at,
            source="client_credentials" if self._credentials.uses_client_credentials else "static",
            scopes_known=scopes_known,
        )

    # -- tokens ---------------------------------------------------------------------------------

    async def _access_token(self) -> str:
        static = self._credentials.token
        if static is not None:
            return static
        if self._token is not None and time.monotonic() < self._token_refresh_at:
            return self._token
        if self._token_lock is None:
            raise _not_open()
        async with self._token_lock:
            # Another task may have refreshed it while this one queued for the lock.
            if self._token is not None and time.monotonic() < self._token_refresh_at:
                return self._token
            if not self.stats.token_requests:
                reason = "initial"
            else:
                reason = "rejected" if self._token is None else "expiring"
            return await self._fetch_token(reason)

    async def _fetch_token(self, reason: str) -> str:
        creds = self._credentials
        payload = orjson.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "audience": creds.audience,
            }
        )
        self.stats.token_requests += 1
        answer = await self._call(
            "POST", TOKEN_PATH, payload=payload, payload_type="application/json", authorize=False
        )
        body = answer.body
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(token, str) or not token:
            raise _malformed("POST", TOKEN_PATH, answer.status, "a token grant")
        lifetime = body.get("expires_in")
        now = time.monotonic()
        if isinstance(lifetime, int | float) and lifetime > 0:
            margin = self._settings.token_refresh_margin
            self._token_refresh_at = now + max(lifetime - margin, lifetime / 2)
            self._token_expires_at = time.time() + lifetime
        else:
            self._token_refresh_at = float("inf")
            self._token_expires_at = None
        scope = body.get("scope")
        self._grant_scope = scope if isinstance(scope, str) else None
        self._token = token
        self._emit(
            "token_refreshed",
            {
                "reason": reason,
                "expires_in": lifetime if isinstance(lifetime, int | float) else None,
            },
        )
        return token

    def _forget_token(self, token: str) -> None:
        # Only if no other task replaced it already: one 401 wave causes one refresh.
        if self._token == token:
            self._token = None

    # -- requests -------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: bytes | None = None,
        payload_type: str | None = None,
        idempotent: bool = True,
        authorize: bool = True,
    ) -> _Answer:
        """One API call with its retries and its single token refresh after a 401."""
        attempt = 1
        refreshed = False
        while True:
            # The budget first, the token after it: a token taken before a long wait in the queue
            # can expire there (and be refused again after its one refresh).
            await self._wait_for_budget()
            headers: dict[str, str] = {}
            token = await self._access_token() if authorize else None
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            if payload_type is not None:
                headers["Content-Type"] = payload_type
            try:
                return await self._attempt(method, path, headers, params, payload, authorize)
            except AuthError as exc:
                can_refresh = authorize and self._credentials.uses_client_credentials
                if exc.status != 401 or refreshed or not can_refresh or token is None:
                    raise
                # A 401 proves nothing was done, so even the POST can simply be repeated.
                refreshed = True
                self._forget_token(token)
            except ApiError as exc:
                if not idempotent and not isinstance(exc, RateLimitedError):
                    raise
                delay = retry_delay(self._settings.retry, attempt, exc, self._rng)
                if delay is None:
                    raise
                self.stats.retries += 1
                self._emit(
                    "retry",
                    {
                        "method": method,
                        "path": path,
                        "attempt": attempt,
                        "seconds": round(delay, 3),
                        "error": type(exc).__name__,
                        "status": getattr(exc, "status", None),
                        "reason": str(exc),
                    },
                )
                await anyio.sleep(delay)
                attempt += 1

    async def _attempt(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        payload: bytes | None,
        authorize: bool,
    ) -> _Answer:
        """One HTTP exchange (the budget already waited for): send, interpret the answer."""
        raw = await self._exchange(method, path, headers, params, payload)
        status = raw.status
        self.stats.answers_by_status[status] = self.stats.answers_by_status.get(status, 0) + 1
        parsed = _parse_json(raw.content)
        if 200 <= status < 300:
            self._note_rate_headers(method, path, raw, limited=False)
            if parsed is _UNREADABLE:
                raise _malformed(method, path, status, "JSON")
            return _Answer(status, parsed)
        body = raw.content.decode("utf-8", "replace") if parsed is _UNREADABLE else parsed
        message = self._scrub(_service_message(body))
        slots = status == 429 and SLOTS_BUSY_MARKER in message.lower()
        wait = self._note_rate_headers(method, path, raw, limited=status == 429 and not slots)
        raise self._status_error(method, path, status, body, message, wait, authorize)

    async def _exchange(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        payload: bytes | None,
    ) -> _Raw:
        session = self._session
        if session is None:
            raise _not_open()
        self.stats.requests_sent += 1
        try:
            with _translate_errors(method, path, self._base_url):
                async with session.request(
                    method,
                    self._base_url + path,
                    params=params,
                    data=payload,
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    content = await response.read()
                    h = response.headers
                    offset = clock_offset(h.get("Date"), time.time())
                    if offset is not None:
                        self.server_clock_offset = offset
                    return _Raw(
                        status=response.status,
                        content=content,
                        retry_after=h.get("Retry-After"),
                        remaining=h.get("X-RateLimit-Remaining"),
                        reset=h.get("X-RateLimit-Reset"),
                    )
        except TransportError:
            self.stats.transport_errors += 1
            raise

    def _status_error(
        self,
        method: str,
        path: str,
        status: int,
        body: object,
        message: str,
        wait: float | None,
        authorize: bool,
    ) -> ApiStatusError:
        """The exception for a non-2xx answer; the message names method, path, status, reason."""
        where = f"{method} {path} -> {status}: {message}"
        url = self._base_url + path

        def error(cls: type[ApiStatusError], text: str) -> ApiStatusError:
            return cls(text, status=status, body=body, method=method, url=url)

        if status == 429:
            if SLOTS_BUSY_MARKER in message.lower():
                self.stats.slots_busy += 1
                match = _ACTIVE_JOBS.search(message)
                return SlotsBusyError(
                    where,
                    active_jobs=int(match.group(1)) if match else None,
                    status=status,
                    body=body,
                    method=method,
                    url=url,
                )
            self.stats.rate_limited += 1
            return RateLimitedError(
                where, status=status, body=body, method=method, url=url, retry_after=wait
            )
        if status >= 500:
            return error(ServerError, where)
        if not authorize and status >= 400:
            # Any refusal of the grant itself means the credentials or the grant are wrong.
            return error(AuthError, f"{where}; {_GRANT_HELP}")
        if status == 401:
            hint = (
                "the token was refused even after a refresh; " + _GRANT_HELP
                if self._credentials.uses_client_credentials
                else "AUTH0_TOKEN was refused (expired, revoked or for another tenant): get a new"
                " one or use AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET"
            )
            return error(AuthError, f"{where}; {hint}")
        if status == 403:
            return error(AuthError, f"{where}; {_SCOPE_HELP}")
        # 400, 404, 413, other 4xx, and redirects (never followed: they would carry the token).
        return error(RequestRejectedError, where)

    # -- the request budget ---------------------------------------------------------------------

    async def _wait_for_budget(self) -> None:
        if self._limiter is None:
            raise _not_open()
        started = time.monotonic()
        await self._wait_not_before()
        await self._limiter.acquire()
        # Another answer may have pushed the gate while this request queued in the limiter.
        await self._wait_not_before()
        self.stats.rate_limit_wait_seconds += time.monotonic() - started

    async def _wait_not_before(self) -> None:
        # Polling, not an Event: the gate is a time, and it may move later while we sleep.
        while (delay := self._not_before - time.monotonic()) > 0:  # noqa: ASYNC110
            await anyio.sleep(delay)

    def _note_rate_headers(
        self, method: str, path: str, raw: _Raw, *, limited: bool
    ) -> float | None:
        """Push the shared gate when the server says the budget is spent; returns its wait.

        ``limited`` marks a rate-limit 429. Otherwise only ``x-ratelimit-remaining: 0`` matters.
        """
        if not limited and (raw.remaining or "").strip() != "0":
            return None
        wait = _server_wait(raw.retry_after, raw.reset, time.time())
        if wait is None:
            return None
        capped = wait > self._settings.max_server_wait
        wait = min(max(wait, 0.0), self._settings.max_server_wait)
        if wait <= 0:
            return 0.0
        # A little jitter so that several clients of one tenant do not all return at once.
        pause = wait * (1.0 + self._rng.uniform(0.0, self._settings.retry.jitter))
        not_before = time.monotonic() + pause
        if not_before > self._not_before:
            self._not_before = not_before
            self._emit(
                "rate_limit_wait",
                {
                    "method": method,
                    "path": path,
                    "seconds": round(pause, 3),
                    "reason": "429" if limited else "remaining=0",
                    "capped": capped,
                },
            )
        return wait

    # -- helpers --------------------------------------------------------------------------------

    def _job_info(self, method: str, path: str, answer: _Answer) -> JobInfo:
        body = answer.body
        if not isinstance(body, dict):
            raise _malformed(method, path, answer.status, "a job object")
        job_id, status = body.get("id"), body.get("status")
        if not isinstance(job_id, str) or not isinstance(status, str):
            raise _malformed(method, path, answer.status, "a job object with id and status")
        summary = body.get("summary")
        return JobInfo(
            id=job_id,
            status=status,
            external_id=_opt_str(body.get("external_id")),
            created_at=_opt_str(body.get("created_at")),
            summary=(
                {k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)}
                if isinstance(summary, dict)
                else None
            ),
            percentage_done=_opt_int(body.get("percentage_done")),
            time_left_seconds=_opt_int(body.get("time_left_seconds")),
            status_details=_opt_str(body.get("status_details")),
        )

    def _scrub(self, text: str) -> str:
        """Remove any secret the service might have echoed back."""
        for secret in (self._credentials.token, self._credentials.client_secret, self._token):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _emit(self, name: str, fields: Mapping[str, object]) -> None:
        if self._events is not None:
            self._events(name, fields)


@contextmanager
def _translate_errors(method: str, path: str, base_url: str) -> Iterator[None]:
    """The one place where aiohttp's exceptions become ours (the original stays as __cause__)."""
    where = f"{method} {path}"
    url = base_url + path
    try:
        yield
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        # The connection was never established, so the request cannot have been processed.
        raise TransportError(
            f"{where}: cannot connect to {base_url}: {_describe(exc)}",
            maybe_processed=False,
            method=method,
            url=url,
        ) from exc
    except TimeoutError as exc:
        raise TransportError(
            f"{where}: no answer in time ({_describe(exc)})", method=method, url=url
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(
            f"{where}: connection failed: {_describe(exc)}", method=method, url=url
        ) from exc


def _not_open() -> RuntimeError:
    return RuntimeError("ApiClient used outside `async with ApiClient(...) as client:`")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Unreadable:
    """Marker for an answer body that is not JSON."""


_UNREADABLE: Final = _Unreadable()


def _parse_json(content: bytes) -> object:
    if not content.strip():
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return _UNREADABLE


def _malformed(method: str, path: str, status: int, expected: str) -> TransportError:
    # The exchange happened but its answer is unusable: for a POST a job may exist.
    return TransportError(
        f"{method} {path}: the answer ({status}) is not {expected}", method=method, url=path
    )


def _service_message(body: object) -> str:
    """The service's own explanation: Management API ``message``, OAuth ``error_description``."""
    text: object = body
    if isinstance(body, dict):
        text = body.get("message") or body.get("error_description") or body.get("error") or ""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = " ".join(text.split())
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 3] + "..."
    return text or "(no message)"


def clock_offset(date_header: str | None, now: float) -> float | None:
    """Seconds the server's clock is ahead of ours (negative: behind), from an HTTP Date header.

    The header has whole seconds (truncated), so half a second is added to centre the estimate;
    None when the header is absent or unreadable.
    """
    if not date_header:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # RFC 9110 dates are always GMT; "-0000" parses as naive.
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() + 0.5 - now


def _server_wait(retry_after: str | None, reset: str | None, now: float) -> float | None:
    """Seconds the server asks to wait: Retry-After (seconds or HTTP date), else X-RateLimit-Reset."""
    if retry_after is not None:
        value = retry_after.strip()
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return email.utils.parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            pass
    if reset is not None:
        try:
            value_f = float(reset.strip())
        except ValueError:
            return None
        return value_f - now if value_f >= _EPOCH_FLOOR else value_f
    return None


def _jwt_claims(token: str) -> dict[str, object] | None:
    """The payload of a JWT, decoded but NOT verified; None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(segment))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _user_error(method: str, path: str, status: int, item: object) -> UserError:
    if not isinstance(item, dict) or not isinstance(item.get("errors"), list):
        raise _malformed(method, path, status, "a list of {user, errors} items")
    user = item.get("user")
    errors = [
        {str(k): str(v) for k, v in error.items() if v is not None}
        for error in item["errors"]
        if isinstance(error, dict)
    ]
    return UserError(user=user if isinstance(user, dict) else {}, errors=errors)


def _segment(value: str) -> str:
    """A path segment, quoted so that an id can never reach another endpoint."""
    if not value:
        raise ValueError("an empty id cannot name a resource")
    return quote(value, safe="")


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
