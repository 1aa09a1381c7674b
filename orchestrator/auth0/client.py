"""The endpoints the tool calls, as typed results: every request of the tool goes through `ApiClient`.

Owns the call loop (the request budget, the token, retries, the single refresh after a 401) and the
translation of HTTP statuses into `orchestrator.errors`. The road itself is `http.py`, the pace
`budget.py`, the token `token.py`, the reading of answers into types `answers.py`; callers see only
the types and exceptions defined there and here.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self
from urllib.parse import quote

import anyio
import orjson

from orchestrator.auth0.answers import (
    UNREADABLE,
    Answer,
    JobInfo,
    UserError,
    job_info,
    malformed,
    parse_json,
    printable,
    service_message,
    user_error,
)
from orchestrator.auth0.budget import RequestBudget
from orchestrator.auth0.credentials import Credentials
from orchestrator.auth0.http import HttpSession, RawAnswer
from orchestrator.auth0.multipart import (
    ImportFields,
    content_type,
    encode_import_body,
    new_boundary,
)
from orchestrator.auth0.retry import retry_delay
from orchestrator.auth0.token import Grant, TokenCache, TokenInfo
from orchestrator.errors import (
    ApiError,
    ApiStatusError,
    AuthError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    SlotsBusyError,
    TransportError,
)
from orchestrator.events import EventSink, discard
from orchestrator.limits import IMPORTS_PATH, SLOTS_BUSY_MARKER
from orchestrator.settings import ClientSettings

TOKEN_PATH: Final = "/oauth/token"
#: The grant a database user signs in with, naming its connection (the realm).
PASSWORD_REALM_GRANT: Final = "http://auth0.com/oauth/grant-type/password-realm"
JOBS_PATH: Final = "/api/v2/jobs"
CONNECTIONS_PATH: Final = "/api/v2/connections"
USERS_BY_EMAIL_PATH: Final = "/api/v2/users-by-email"
#: "There are 2 active import users jobs, please wait ..." (reference §3).
_ACTIVE_JOBS: Final = re.compile(r"there are (\d+) active", re.IGNORECASE)
#: A bearer credential quoted in text: "Bearer <token>" (what follows the word is redacted).
_BEARER: Final = re.compile(r"(\bBearer\s+)(?!\[redacted\])[^\s\"',;)]+", re.IGNORECASE)
#: A JSON Web Token, whole or cut short (its header always starts with eyJ, base64 of '{"').
_JWT: Final = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){0,2}")
_SCOPE_HELP: Final = (
    "grant the missing scope to the application in the Auth0 dashboard (APIs > Auth0 Management "
    "API > Machine to Machine Applications; the tool needs create:users, read:users and "
    "read:connections), then use a new token"
)
_GRANT_HELP: Final = (
    "check AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET, and that the application is authorized "
    "(has a client grant) for the Auth0 Management API"
)


@dataclass(slots=True)
class RequestStats:
    """Counters of everything the client did; plain numbers, safe to read at any time.

    Attributes:
        requests_sent: HTTP requests started (retries and token requests included).
        answers_by_status: HTTP answers received, by status code.
        transport_errors: requests that got no HTTP answer.
        rate_limited: rate-limit 429s.
        slots_busy: job-slot 429s ("N active import users jobs").
        retries: requests repeated after a failure (token refreshes after a 401 not included).
    """

    requests_sent: int = 0
    answers_by_status: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    rate_limited: int = 0
    slots_busy: int = 0
    retries: int = 0


class ApiClient:
    """Async client for the few Management API calls the tool makes.

    Use as ``async with ApiClient(credentials, settings) as client:``; the session, the request
    budget and the token lock are created on entry (they are bound to the running event loop).
    Safe to share between tasks: they all draw from one request budget and one cached token.
    """

    def __init__(
        self,
        credentials: Credentials,
        settings: ClientSettings,
        *,
        events: EventSink = discard,
        rng: random.Random | None = None,
    ) -> None:
        self._credentials = credentials
        self._settings = settings
        self._events = events
        self._rng = rng if rng is not None else random.Random()
        self._http = HttpSession(credentials.base_url, settings)
        self._budget: RequestBudget | None = None
        self._tokens = TokenCache(credentials, settings.token_refresh_margin, events)
        self.stats = RequestStats()

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        self._budget = RequestBudget(self._settings, self._events, self._rng)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    @property
    def server_clock_offset(self) -> float | None:
        """Server clock minus local clock (seconds), from the latest HTTP Date header; None before."""
        return None if self._budget is None else self._budget.clock_offset

    @property
    def server_clock_floor(self) -> float | None:
        """The least the server's clock can be ahead of ours, over every answer so far (seconds;
        negative: behind); None before any answer. Never above the true offset."""
        return None if self._budget is None else self._budget.clock_floor

    @property
    def token_requests(self) -> int:
        """Client-credentials grants requested so far."""
        return self._tokens.grants

    @property
    def rate_limit_wait_seconds(self) -> float:
        """Seconds requests spent waiting for the budget, summed over requests."""
        return 0.0 if self._budget is None else self._budget.waited_seconds

    # -- public calls ---------------------------------------------------------------------------

    async def create_import_job(self, users_json: bytes, fields: ImportFields) -> JobInfo:
        """POST /api/v2/jobs/users-imports with one chunk of users.

        Only a rate-limit 429 (which proves no job was created) is retried here; the caller owns
        resubmission, because a failed POST may still have created a job.

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
        return self._shown_job(job_info("POST", IMPORTS_PATH, answer))

    async def get_job(self, job_id: str) -> JobInfo:
        """GET /api/v2/jobs/{id}, retried on transport errors, 5xx and rate limits.

        Raises:
            RequestRejectedError: 404 when the job does not exist (or was deleted after 24 h).
        """
        path = f"{JOBS_PATH}/{_segment(job_id)}"
        return self._shown_job(job_info("GET", path, await self._call("GET", path)))

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
            return self._shown_job(job_info("GET", path, answer))
        if not isinstance(answer.body, list):
            raise malformed("GET", path, answer.status, "a list of user errors")
        errors = [user_error("GET", path, answer.status, item) for item in answer.body]
        return [
            UserError(
                user=error.user,
                errors=[{k: self.shown(v) for k, v in e.items()} for e in error.errors],
            )
            for error in errors
        ]

    async def get_connection(self, connection_id: str) -> dict[str, object]:
        """GET /api/v2/connections/{id}: the connection object as the service returns it."""
        path = f"{CONNECTIONS_PATH}/{_segment(connection_id)}"
        answer = await self._call("GET", path)
        if not isinstance(answer.body, dict):
            raise malformed("GET", path, answer.status, "a connection object")
        return answer.body

    async def connections_named(self, name: str) -> list[dict[str, object]]:
        """GET /api/v2/connections?name=...: the connections with exactly that name (0 or 1)."""
        params = {"name": name, "fields": "id,name,strategy"}
        answer = await self._call("GET", CONNECTIONS_PATH, params=params)
        body = answer.body
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise malformed("GET", CONNECTIONS_PATH, answer.status, "a list of connections")
        return body

    async def sign_in(
        self, realm: str, username: str, password: str, *, client_id: str, client_secret: str
    ) -> None:
        """POST /oauth/token with the password-realm grant: a user of database connection `realm`
        signs in. Returns when the password is right; the refusal is an AuthError whose body
        carries the OAuth `error` (invalid_grant: wrong password; unauthorized: blocked).

        The password goes in the request body only: never in a message, an event or a log.
        """
        payload = orjson.dumps(
            {
                "grant_type": PASSWORD_REALM_GRANT,
                "realm": realm,
                "username": username,
                "password": password,
                "client_id": client_id,
                "client_secret": client_secret,
                "scope": "openid",
            }
        )
        await self._call(
            "POST",
            TOKEN_PATH,
            payload=payload,
            payload_type="application/json",
            authorize=False,
            idempotent=False,
        )

    async def users_by_email(self, email: str) -> list[dict[str, object]]:
        """GET /api/v2/users-by-email?email=...: every user with that address (any connection)."""
        answer = await self._call("GET", USERS_BY_EMAIL_PATH, params={"email": email})
        body = answer.body
        if not isinstance(body, list) or not all(isinstance(user, dict) for user in body):
            raise malformed("GET", USERS_BY_EMAIL_PATH, answer.status, "a list of users")
        return body

    async def token_info(self) -> TokenInfo:
        """The current token's scopes and expiry, obtaining a token first if needed."""
        return self._tokens.info(await self._tokens.get(self._grant))

    # -- the call loop --------------------------------------------------------------------------

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
    ) -> Answer:
        """One API call with its retries and its single token refresh after a 401."""
        attempt = 1
        refreshed = False
        while True:
            # The budget first, the token after it: a token taken before a long wait in the queue
            # can expire there (and be refused again after its one refresh).
            await self._wait_for_budget()
            headers: dict[str, str] = {}
            token = await self._tokens.get(self._grant) if authorize else None
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            if payload_type is not None:
                headers["Content-Type"] = payload_type
            try:
                return await self._attempt(method, path, headers, params, payload, authorize)
            except AuthError as exc:
                can_refresh = authorize and self._tokens.refreshable
                if exc.status != 401 or refreshed or not can_refresh or token is None:
                    raise
                # A 401 proves nothing was done, so even the POST can simply be repeated.
                refreshed = True
                self._tokens.forget(token)
            except ApiError as exc:
                if not idempotent and not isinstance(exc, RateLimitedError):
                    raise
                delay = retry_delay(self._settings.retry, attempt, exc, self._rng)
                if delay is None:
                    raise
                self.stats.retries += 1
                self._events(
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

    async def _wait_for_budget(self) -> None:
        if self._budget is None:
            raise RuntimeError("ApiClient used outside `async with ApiClient(...) as client:`")
        await self._budget.wait()

    async def _attempt(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        payload: bytes | None,
        authorize: bool,
    ) -> Answer:
        """One HTTP exchange (the budget already waited for): send, interpret the answer."""
        assert self._budget is not None
        self.stats.requests_sent += 1
        try:
            raw = await self._http.exchange(method, path, headers, params, payload)
        except TransportError:
            self.stats.transport_errors += 1
            raise
        status = raw.status
        self.stats.answers_by_status[status] = self.stats.answers_by_status.get(status, 0) + 1
        parsed = parse_json(raw.content)
        if 200 <= status < 300:
            self._budget.note(method, path, raw, limited=False)
            if parsed is UNREADABLE:
                raise malformed(method, path, status, "JSON")
            return Answer(status, parsed)
        # Scrubbed whole, before any of it is cut short: a cut secret no longer matches itself.
        body = _scrubbed_body(
            raw.content.decode("utf-8", "replace") if parsed is UNREADABLE else parsed, self.shown
        )
        message = service_message(body)
        slots = status == 429 and SLOTS_BUSY_MARKER in message.lower()
        wait = self._budget.note(method, path, raw, limited=status == 429 and not slots)
        raise self._status_error(method, path, raw, body, message, wait, authorize)

    def _status_error(
        self,
        method: str,
        path: str,
        raw: RawAnswer,
        body: object,
        message: str,
        wait: float | None,
        authorize: bool,
    ) -> ApiStatusError:
        """The exception for a non-2xx answer; the message names method, path, status, reason."""
        status = raw.status
        where = f"{method} {path} -> {status}: {message}"
        url = self._credentials.base_url + path

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
                if self._tokens.refreshable
                else "AUTH0_TOKEN was refused (expired, revoked or for another tenant): get a new"
                " one or use AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET"
            )
            return error(AuthError, f"{where}; {hint}")
        if status == 403:
            return error(AuthError, f"{where}; {_SCOPE_HELP}")
        # 400, 404, 413, other 4xx, and redirects (never followed: they would carry the token).
        return error(RequestRejectedError, where)

    async def _grant(self) -> Grant:
        """The client-credentials grant (reference §9), through the same budget and retries."""
        creds = self._credentials
        payload = orjson.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "audience": creds.audience,
            }
        )
        answer = await self._call(
            "POST", TOKEN_PATH, payload=payload, payload_type="application/json", authorize=False
        )
        body = answer.body
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(token, str) or not token:
            raise malformed("POST", TOKEN_PATH, answer.status, "a token grant")
        lifetime = body.get("expires_in")
        scope = body.get("scope")
        return Grant(
            access_token=token,
            expires_in=float(lifetime)
            if isinstance(lifetime, int | float) and not isinstance(lifetime, bool)
            else None,
            scope=scope if isinstance(scope, str) else None,
        )

    def _shown_job(self, job: JobInfo) -> JobInfo:
        """The job with the text the service wrote in it (status_details) fit to show."""
        if job.status_details is None:
            return job
        return dataclasses.replace(job, status_details=self.shown(job.status_details))

    def shown(self, text: str) -> str:
        """`text` from the service, fit to show: secrets it echoed and control characters removed."""
        for secret in (*self._credentials.secrets, self._tokens.held):
            if secret:
                text = text.replace(secret, "[redacted]")
        # Whatever else looks like a credential: another token, or one the service cut short.
        text = _BEARER.sub(r"\1[redacted]", text)
        return printable(_JWT.sub("[redacted]", text))


def _scrubbed_body(body: object, shown: Callable[[str], str]) -> object:
    """A JSON body with every string passed through `shown` (echoed secrets removed)."""
    if isinstance(body, str):
        return shown(body)
    if isinstance(body, dict):
        return {key: _scrubbed_body(value, shown) for key, value in body.items()}
    if isinstance(body, list):
        return [_scrubbed_body(item, shown) for item in body]
    return body


def _segment(value: str) -> str:
    """A path segment, quoted so that an id can never reach another endpoint."""
    if not value:
        raise ValueError("an empty id cannot name a resource")
    return quote(value, safe="")
