"""ApiClient against the real sandbox over HTTP on 127.0.0.1: tokens, status mapping, retries, the
request budget and the server's rate-limit headers, and that no secret ever reaches a message or event.
"""

from __future__ import annotations

import base64
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from email.utils import formatdate

import anyio
import orjson
import pytest

from orchestrator.auth0.answers import JobInfo, UserError
from orchestrator.auth0.budget import limiter_shape, server_wait
from orchestrator.auth0.client import ApiClient
from orchestrator.auth0.credentials import Credentials
from orchestrator.auth0.multipart import ImportFields
from orchestrator.errors import (
    ApiError,
    AuthError,
    ConfigError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    SlotsBusyError,
    TransportError,
)
from orchestrator.limits import IMPORTS_PATH
from orchestrator.sandbox import (
    DATABASE_CONNECTION_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SOCIAL_CONNECTION_ID,
    SandboxServer,
    SandboxSettings,
)
from orchestrator.settings import ClientSettings, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=4, wait_initial=0.01, wait_max=0.05, jitter=0.1)
STATIC_TOKEN = "static-management-token-0123456789"
USERS = b'[{"email":"ada@example.com","email_verified":true}]'
JOBS = "/api/v2/jobs/"


def fields(
    external_id: str = "test-000001", connection_id: str = DATABASE_CONNECTION_ID
) -> ImportFields:
    return ImportFields(
        connection_id=connection_id,
        upsert=False,
        external_id=external_id,
        send_completion_email=False,
    )


def client_settings(**overrides: object) -> ClientSettings:
    values: dict[str, object] = {
        "max_rps": 1000.0,
        "request_timeout": 5.0,
        "connect_timeout": 2.0,
        "retry": FAST_RETRY,
    }
    values.update(overrides)
    return ClientSettings(**values)  # type: ignore[arg-type]


class Events:
    """An EventSink that keeps everything it is told."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, object]]] = []
        self.hooks: dict[str, Callable[[Mapping[str, object]], None]] = {}

    def __call__(self, name: str, fields: Mapping[str, object]) -> None:
        self.items.append((name, dict(fields)))
        if name in self.hooks:
            self.hooks[name](fields)

    def named(self, name: str) -> list[dict[str, object]]:
        return [f for n, f in self.items if n == name]


@asynccontextmanager
async def sandbox(
    clock: Callable[[], float] = time.monotonic, **settings: object
) -> AsyncIterator[SandboxServer]:
    values: dict[str, object] = {"job_latency": 0.0, "job_seconds": 0.05}
    values.update(settings)
    async with SandboxServer(SandboxSettings(**values), clock=clock) as server:  # type: ignore[arg-type]
        yield server


def grant(server: SandboxServer, secret: str = DEFAULT_CLIENT_SECRET) -> Credentials:
    return Credentials.for_tenant(
        domain=None, base_url=server.base_url, client_id=DEFAULT_CLIENT_ID, client_secret=secret
    )


def static(base_url: str, token: str = STATIC_TOKEN) -> Credentials:
    return Credentials.for_tenant(domain=None, base_url=base_url, token=token)


def assert_no_secrets(*texts: object) -> None:
    for text in texts:
        for secret in (STATIC_TOKEN, DEFAULT_CLIENT_SECRET, "wrong-secret-value", "eyJ"):
            assert secret not in str(text)


def assert_clean(exc: BaseException, events: Events | None = None) -> None:
    """Neither the message, the repr, nor any event carries a token or a secret."""
    assert_no_secrets(str(exc), repr(exc))
    if events is not None:
        assert_no_secrets(orjson.dumps(events.items, default=str))


def posts(server: SandboxServer, path: str = IMPORTS_PATH) -> list[int]:
    return [r.status for r in server.state.requests if r.method == "POST" and r.path == path]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def fake_jwt(claims: Mapping[str, object]) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.c2lnbmF0dXJl"


# -- tokens ---------------------------------------------------------------------------------------


async def test_static_token_is_used_as_is() -> None:
    async with (
        sandbox(static_token=STATIC_TOKEN) as server,
        ApiClient(static(server.base_url), client_settings()) as client,
    ):
        connection = await client.get_connection(DATABASE_CONNECTION_ID)
        info = await client.token_info()
    assert connection["id"] == DATABASE_CONNECTION_ID
    assert server.state.tokens_issued == 0
    assert client.token_requests == 0
    # An opaque token says nothing about its scopes: unknown, not "none granted".
    assert info.source == "static"
    assert not info.scopes_known
    assert info.scopes == frozenset()


async def test_static_jwt_scopes_and_expiry_are_read_from_the_payload() -> None:
    token = fake_jwt({"scope": "create:users read:users", "exp": 1_900_000_000})
    async with (
        sandbox(static_token=token) as server,
        ApiClient(static(server.base_url, token), client_settings()) as client,
    ):
        info = await client.token_info()
    assert info.scopes == {"create:users", "read:users"}
    assert info.scopes_known
    assert info.expires_at == 1_900_000_000.0


async def test_client_credentials_token_is_fetched_once_and_shared() -> None:
    events = Events()
    async with (
        sandbox(token_lifetime=3600) as server,
        ApiClient(grant(server), client_settings(), events=events) as client,
    ):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(client.get_connection, DATABASE_CONNECTION_ID)
        info = await client.token_info()
    assert server.state.tokens_issued == 1
    assert client.token_requests == 1
    assert info.source == "client_credentials"
    assert info.scopes == {"create:users", "read:users", "read:connections"}
    assert info.expires_at is not None
    assert abs(info.expires_at - (time.time() + 3600)) < 5
    assert [e["reason"] for e in events.named("token_refreshed")] == ["initial"]
    assert_no_secrets(orjson.dumps(events.items))


async def test_token_is_refreshed_before_it_expires() -> None:
    events = Events()
    # Refreshed at 1.0 - 0.5 s, half a second before the sandbox would refuse it.
    settings = client_settings(token_refresh_margin=0.5)
    async with (
        sandbox(token_lifetime=1.0) as server,
        ApiClient(grant(server), settings, events=events) as client,
    ):
        deadline = time.monotonic() + 1.3
        while time.monotonic() < deadline:
            await client.get_connection(DATABASE_CONNECTION_ID)
            await anyio.sleep(0.05)
    assert 401 not in client.stats.answers_by_status  # refreshed in time, never refused
    assert server.state.tokens_issued >= 2
    assert "expiring" in [e["reason"] for e in events.named("token_refreshed")]


async def test_a_token_is_taken_after_the_wait_for_the_request_budget() -> None:
    # 12 calls at 4 requests a second queue for up to ~3 s, twice a token's lifetime: a token
    # taken before that wait would expire in it.
    settings = client_settings(max_rps=4.0, token_refresh_margin=0.5)
    async with (
        sandbox(token_lifetime=1.5) as server,
        ApiClient(grant(server), settings) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(12):
            tg.start_soon(client.get_connection, DATABASE_CONNECTION_ID)
    assert 401 not in client.stats.answers_by_status


async def test_revoked_token_is_refreshed_once_then_the_call_succeeds() -> None:
    events = Events()
    async with (
        sandbox() as server,
        ApiClient(grant(server), client_settings(), events=events) as client,
    ):
        await client.get_connection(DATABASE_CONNECTION_ID)
        server.state.revoke_tokens()
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(client.get_connection, DATABASE_CONNECTION_ID)
    # Five tasks saw the same dead token; one refresh served them all.
    assert server.state.tokens_issued == 2
    assert client.stats.answers_by_status[401] == 5
    assert client.stats.retries == 0
    assert [e["reason"] for e in events.named("token_refreshed")] == ["initial", "rejected"]


async def test_a_second_401_after_refresh_is_an_auth_error() -> None:
    # A sandbox clock that leaps an hour on every read: every token is expired when checked.
    leaps = itertools.count()

    def leaping_clock() -> float:
        return time.monotonic() + 3600.0 * next(leaps)

    events = Events()
    async with (
        sandbox(clock=leaping_clock, token_lifetime=60) as server,
        ApiClient(grant(server), client_settings(), events=events) as client,
    ):
        with pytest.raises(AuthError) as info:
            await client.get_job("job_AAAAAAAAAAAAAAAA")
    assert info.value.status == 401
    assert client.stats.answers_by_status[401] == 2
    assert client.token_requests == 2
    assert "AUTH0_CLIENT_ID" in str(info.value)
    assert_clean(info.value, events)


async def test_refused_static_token_is_an_auth_error_without_retry() -> None:
    async with (
        sandbox(static_token="the-right-one") as server,
        ApiClient(static(server.base_url), client_settings()) as client,
    ):
        with pytest.raises(AuthError) as info:
            await client.get_connection(DATABASE_CONNECTION_ID)
    assert info.value.status == 401
    assert client.stats.requests_sent == 1
    assert "AUTH0_TOKEN was refused" in str(info.value)
    assert str(info.value).startswith(f"GET /api/v2/connections/{DATABASE_CONNECTION_ID} -> 401")
    assert_clean(info.value)


async def test_bad_client_secret_is_an_auth_error() -> None:
    events = Events()
    async with (
        sandbox() as server,
        ApiClient(grant(server, "wrong-secret-value"), client_settings(), events=events) as client,
    ):
        with pytest.raises(AuthError) as info:
            await client.create_import_job(USERS, fields())
    assert info.value.status == 401
    assert "Client authentication failed" in str(info.value)
    assert "AUTH0_CLIENT_SECRET" in str(info.value)
    assert posts(server, "/oauth/token") == [401]
    assert posts(server) == []
    assert_clean(info.value, events)


async def test_client_without_grant_is_an_auth_error() -> None:
    async with (
        sandbox(client_granted=False) as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        with pytest.raises(AuthError) as info:
            await client.token_info()
    assert info.value.status == 403
    assert "client-grant" in str(info.value)
    assert_clean(info.value)


async def test_missing_scope_is_an_auth_error() -> None:
    async with (
        sandbox(scopes=("read:users",)) as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        with pytest.raises(AuthError) as info:
            await client.create_import_job(USERS, fields())
    assert info.value.status == 403
    message = str(info.value)
    assert "Insufficient scope; expected any of: create:users" in message
    assert "grant the missing scope" in message
    assert client.stats.requests_sent == 2  # the token, then one POST: never retried
    assert_clean(info.value)


async def test_token_endpoint_rate_limit_and_5xx_are_retried() -> None:
    token_path = {"method": "POST", "path_prefix": "/oauth/token"}
    async with sandbox() as server:
        server.state.faults.rate_limit_429s(1, **token_path)
        server.state.faults.fail_requests(1, status=500, **token_path)
        settings = client_settings(max_server_wait=0.05)
        async with ApiClient(grant(server), settings) as client:
            await client.get_connection(DATABASE_CONNECTION_ID)
    # The sandbox applies a 5xx fault before a 429 fault.
    assert posts(server, "/oauth/token") == [500, 429, 200]
    assert client.stats.retries == 2


# -- status mapping -------------------------------------------------------------------------------


async def test_create_import_job_answers_202_with_the_job() -> None:
    async with (
        sandbox() as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        job = await client.create_import_job(USERS, fields("ext-000007"))
    assert job.id.startswith("job_")
    assert job.status in {"pending", "processing"}
    assert job.external_id == "ext-000007"
    assert job.created_at is not None
    assert posts(server) == [202]
    (record,) = server.state.jobs()
    assert record.id == job.id


async def test_too_large_request_is_rejected_not_retried() -> None:
    async with (
        sandbox(max_request_bytes=1000) as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        big = b"[" + b",".join([b'{"email":"user%d@example.com"}' % i for i in range(100)]) + b"]"
        with pytest.raises(RequestRejectedError) as info:
            await client.create_import_job(big, fields())
    assert info.value.status == 413
    assert "512000" in str(info.value) or "greater than maximum" in str(info.value)
    assert posts(server) == [413]
    assert_clean(info.value)


async def test_bad_connection_is_rejected_with_the_service_message() -> None:
    async with (
        sandbox() as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        with pytest.raises(RequestRejectedError) as info:
            await client.create_import_job(USERS, fields(connection_id=SOCIAL_CONNECTION_ID))
    assert info.value.status == 400
    assert str(info.value) == (
        f"POST {IMPORTS_PATH} -> 400: Connection must be a database connection."
    )
    assert isinstance(info.value.body, dict)
    assert USERS.decode() not in repr(info.value)  # the request body (hashes) is never kept


async def test_unknown_job_is_404() -> None:
    async with (
        sandbox() as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        with pytest.raises(RequestRejectedError) as info:
            await client.get_job("job_AAAAAAAAAAAAAAAA")
    assert info.value.status == 404
    assert client.stats.retries == 0


async def test_slot_limit_429_is_slots_busy_with_the_active_count() -> None:
    async with (
        sandbox(job_slots=1, job_seconds=30) as server,
        ApiClient(grant(server), client_settings()) as client,
    ):
        await client.create_import_job(USERS, fields("a-000001"))
        with pytest.raises(SlotsBusyError) as info:
            await client.create_import_job(USERS, fields("a-000002"))
    assert info.value.status == 429
    assert info.value.active_jobs == 1
    assert "active import users jobs" in str(info.value)
    assert posts(server) == [202, 429]  # not retried inside: the caller waits for a slot
    assert client.stats.slots_busy == 1
    assert client.stats.rate_limited == 0


# -- rate limits ----------------------------------------------------------------------------------


async def test_rate_limit_429_on_post_waits_for_retry_after_then_retries() -> None:
    events = Events()
    async with sandbox(rate_limit_retry_after=True) as server:
        server.state.faults.rate_limit_429s(1, method="POST", path_prefix=IMPORTS_PATH)
        async with ApiClient(grant(server), client_settings(), events=events) as client:
            job = await client.create_import_job(USERS, fields())
    attempts = [r for r in server.state.requests if r.path == IMPORTS_PATH]
    assert [r.status for r in attempts] == [429, 202]
    # The sandbox says Retry-After: 1; the retry must not come earlier.
    assert attempts[1].t - attempts[0].t >= 0.98
    assert len(server.state.jobs()) == 1
    assert server.state.jobs()[0].id == job.id
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1
    (wait,) = events.named("rate_limit_wait")
    assert wait["reason"] == "429"


async def test_rate_limit_429_pauses_every_task_until_the_reset() -> None:
    """One task's 429 (x-ratelimit-reset, no Retry-After) holds back another task's request."""
    events = Events()
    limited = anyio.Event()
    events.hooks["rate_limit_wait"] = lambda _: limited.set()
    async with sandbox() as server:
        server.state.faults.rate_limit_429s(1, method="GET", path_prefix="/api/v2/connections")
        # The injected 429's reset is a second or two away: cap it so the test stays quick.
        settings = client_settings(max_server_wait=0.3)
        async with ApiClient(grant(server), settings, events=events) as client:
            await client.token_info()

            async def other_task() -> None:
                await limited.wait()
                await client.users_by_email("nobody@example.com")

            async with anyio.create_task_group() as tg:
                tg.start_soon(other_task)
                tg.start_soon(client.get_connection, DATABASE_CONNECTION_ID)
    requests = {(r.path, r.status): r.t for r in server.state.requests}
    limited_at = requests[(f"/api/v2/connections/{DATABASE_CONNECTION_ID}", 429)]
    assert requests[("/api/v2/users-by-email", 200)] - limited_at >= 0.28
    assert requests[(f"/api/v2/connections/{DATABASE_CONNECTION_ID}", 200)] - limited_at >= 0.28
    (wait,) = events.named("rate_limit_wait")
    assert wait["capped"] is True


async def test_remaining_zero_is_honoured_so_the_bucket_never_overflows() -> None:
    events = Events()
    async with (
        sandbox(
            static_token=STATIC_TOKEN, rate_limit_per_second=20.0, rate_limit_burst=2
        ) as server,
        ApiClient(static(server.base_url), client_settings(), events=events) as client,
    ):
        started = time.monotonic()
        # One after the other, each after the previous answer: the bucket (2, +1 per 50 ms)
        # is empty after the second, so the third would get a 429 if it did not wait.
        for _ in range(4):
            await client.get_connection(DATABASE_CONNECTION_ID)
        elapsed = time.monotonic() - started
    assert server.state.too_many_requests["rate_limit"] == 0
    assert client.stats.answers_by_status == {200: 4}
    assert events.named("rate_limit_wait")
    assert events.named("rate_limit_wait")[0]["reason"] == "remaining=0"
    assert client.rate_limit_wait_seconds > 0
    assert elapsed < 3.0


@pytest.mark.parametrize(
    ("rps", "shape"),
    [
        (0.5, (1.0, 2.0)),
        (0.25, (1.0, 4.0)),
        (1.0, (1.0, 1.0)),
        (2.0, (2.0, 1.0)),
        (20.4, (20.0, 1.0)),
    ],
)
def test_limiter_shape(rps: float, shape: tuple[float, float]) -> None:
    assert limiter_shape(rps) == shape


async def test_limiter_holds_the_request_rate() -> None:
    rps, count = 20.0, 30
    async with sandbox(static_token=STATIC_TOKEN) as server:
        settings = client_settings(max_rps=rps)
        async with ApiClient(static(server.base_url), settings) as client:
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(client.get_connection, DATABASE_CONNECTION_ID)
            elapsed = time.monotonic() - started
    # A burst of round(rps) goes at once, the rest at rps per second. (Server-side timestamps are
    # not used: under CPU load the server serves queued requests back to back.)
    floor = (count - rps) / rps
    assert elapsed >= floor * 0.9
    assert elapsed < floor + 3.0
    assert server.state.request_count == count


def test_server_wait_parsing() -> None:
    now = 1_700_000_000.0
    assert server_wait("3", None, now) == 3.0
    assert server_wait(" 1.5 ", "1700000100", now) == 1.5  # Retry-After wins
    http_date = formatdate(now + 10, usegmt=True)
    assert server_wait(http_date, None, now) == pytest.approx(10.0, abs=1.0)
    assert server_wait(None, "1700000004", now) == 4.0
    assert server_wait(None, "2", now) == 2.0  # a delta, not a UNIX time
    assert server_wait("soon", "junk", now) is None
    assert server_wait(None, None, now) is None


# -- retries --------------------------------------------------------------------------------------


async def test_get_is_retried_on_5xx() -> None:
    events = Events()
    async with sandbox() as server:
        faults = server.state.faults
        faults.fail_requests(1, status=503, method="GET", path_prefix=JOBS)
        faults.fail_requests(1, status=502, method="GET", path_prefix=JOBS)  # an HTML answer
        async with ApiClient(grant(server), client_settings(), events=events) as client:
            job = await client.create_import_job(USERS, fields())
            polled = await client.get_job(job.id)
    assert polled.id == job.id
    assert client.stats.retries == 2
    assert [e["status"] for e in events.named("retry")] == [503, 502]
    assert [e["attempt"] for e in events.named("retry")] == [1, 2]


async def test_get_is_retried_on_connection_reset() -> None:
    async with sandbox(static_token=STATIC_TOKEN) as server:
        # aiohttp itself repeats a GET once when a kept-alive connection breaks, so two resets
        # are needed before the client sees one.
        server.state.faults.reset_requests(2, method="GET")
        async with ApiClient(static(server.base_url), client_settings()) as client:
            connection = await client.get_connection(DATABASE_CONNECTION_ID)
    assert connection["id"] == DATABASE_CONNECTION_ID
    assert client.stats.transport_errors == 1
    assert client.stats.retries == 1
    assert [r.status for r in server.state.requests] == [0, 0, 200]


async def test_get_gives_up_after_the_policy_attempts() -> None:
    async with sandbox() as server:
        server.state.faults.fail_requests(10, status=500, method="GET")
        async with ApiClient(grant(server), client_settings()) as client:
            with pytest.raises(ServerError) as info:
                await client.get_connection(DATABASE_CONNECTION_ID)
    assert info.value.status == 500
    assert client.stats.answers_by_status[500] == FAST_RETRY.attempts
    assert str(info.value).endswith("-> 500: Internal error.")


async def test_timeout_is_a_transport_error() -> None:
    async with sandbox(static_token=STATIC_TOKEN) as server:
        server.state.faults.set_latency(1.0)
        settings = client_settings(
            request_timeout=0.1, retry=RetryPolicy(attempts=2, wait_initial=0)
        )
        async with ApiClient(static(server.base_url), settings) as client:
            with pytest.raises(TransportError) as info:
                await client.get_connection(DATABASE_CONNECTION_ID)
    assert info.value.maybe_processed
    assert client.stats.transport_errors == 2


async def test_post_reset_after_create_may_have_been_processed() -> None:
    async with sandbox() as server:
        server.state.faults.reset_after_create(1)
        async with ApiClient(grant(server), client_settings()) as client:
            with pytest.raises(TransportError) as info:
                await client.create_import_job(USERS, fields())
    assert info.value.maybe_processed
    assert info.value.method == "POST"
    assert len(server.state.jobs()) == 1  # the job exists although we never heard of it
    assert posts(server) == [0]  # and the POST was not repeated inside the client
    assert isinstance(info.value.__cause__, Exception)
    assert_clean(info.value)


async def test_post_5xx_is_not_retried_inside() -> None:
    async with sandbox() as server:
        server.state.faults.fail_requests(1, status=503, method="POST", path_prefix=IMPORTS_PATH)
        async with ApiClient(grant(server), client_settings()) as client:
            with pytest.raises(ServerError):
                await client.create_import_job(USERS, fields())
    assert posts(server) == [503]


async def test_connection_refused_was_not_processed() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    async with ApiClient(static(base_url), client_settings()) as client:
        with pytest.raises(TransportError) as post:
            await client.create_import_job(USERS, fields())
        with pytest.raises(TransportError) as get:
            await client.get_job("job_AAAAAAAAAAAAAAAA")
    assert not post.value.maybe_processed
    assert not get.value.maybe_processed
    assert "cannot connect" in str(post.value)
    # The POST is tried once; the GET as often as the policy allows.
    assert client.stats.requests_sent == 1 + FAST_RETRY.attempts
    assert_clean(post.value)
    assert_clean(get.value)


async def test_connection_refused_on_the_token_request() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    creds = Credentials.for_tenant(
        domain=None,
        base_url=base_url,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
    )
    async with ApiClient(creds, client_settings()) as client:
        with pytest.raises(TransportError) as info:
            await client.token_info()
    assert not info.value.maybe_processed
    assert client.stats.requests_sent == FAST_RETRY.attempts
    assert_clean(info.value)


# -- job errors -----------------------------------------------------------------------------------


async def wait_terminal(client: ApiClient, job_id: str) -> JobInfo:
    with anyio.fail_after(5):
        while True:
            job = await client.get_job(job_id)
            if job.status in {"completed", "failed"}:
                return job
            await anyio.sleep(0.02)


async def test_job_errors_array() -> None:
    users = b'[{"email":"ok@example.com"},{"email":"dup@example.com","user_metadata":{"a":1}}]'
    async with sandbox() as server:
        server.state.faults.poison_users(["dup@example.com"], code="DUPLICATED_USER")
        async with ApiClient(grant(server), client_settings()) as client:
            job = await client.create_import_job(users, fields())
            done = await wait_terminal(client, job.id)
            errors = await client.get_job_errors(job.id)
    assert done.status == "completed"
    assert done.summary == {"failed": 1, "updated": 0, "inserted": 1, "total": 2}
    assert isinstance(errors, list)
    (error,) = errors
    assert isinstance(error, UserError)
    assert error.user["email"] == "dup@example.com"
    assert error.errors[0]["code"] == "DUPLICATED_USER"
    assert error.errors[0]["message"]


async def test_job_errors_none_on_204() -> None:
    async with sandbox() as server, ApiClient(grant(server), client_settings()) as client:
        job = await client.create_import_job(USERS, fields())
        await wait_terminal(client, job.id)
        assert await client.get_job_errors(job.id) is None
    assert (f"{JOBS}{job.id}/errors", 204) in {(r.path, r.status) for r in server.state.requests}


async def test_job_errors_generic_object_form() -> None:
    async with sandbox() as server:
        server.state.faults.fail_jobs(1, details="could not parse the users file")
        server.state.faults.errors_generic_form = True
        async with ApiClient(grant(server), client_settings()) as client:
            job = await client.create_import_job(USERS, fields())
            done = await wait_terminal(client, job.id)
            answer = await client.get_job_errors(job.id)
    assert done.status == "failed"
    assert isinstance(answer, JobInfo)
    assert answer.id == job.id
    assert answer.status == "failed"
    assert answer.status_details == "could not parse the users file"


async def test_users_by_email_finds_the_imported_user() -> None:
    async with sandbox() as server, ApiClient(grant(server), client_settings()) as client:
        job = await client.create_import_job(USERS, fields())
        await wait_terminal(client, job.id)
        (user,) = await client.users_by_email("ada@example.com")
        assert await client.users_by_email("nobody@example.com") == []
    assert str(user["user_id"]).startswith("auth0|")


# -- plumbing -------------------------------------------------------------------------------------


async def test_client_must_be_entered() -> None:
    client = ApiClient(static("http://127.0.0.1:9"), client_settings())
    with pytest.raises(RuntimeError):
        await client.get_job("job_AAAAAAAAAAAAAAAA")


async def test_ids_cannot_escape_their_path_segment() -> None:
    async with sandbox() as server, ApiClient(grant(server), client_settings()) as client:
        with pytest.raises(RequestRejectedError):
            await client.get_job("../connections/" + DATABASE_CONNECTION_ID)
    paths = [r.path for r in server.state.requests if r.method == "GET"]
    assert all(p.startswith(JOBS) for p in paths)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_rps": 0}, {"request_timeout": 0}, {"connect_timeout": -1}, {"token_refresh_margin": -1}],
)
def test_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ClientSettings(**kwargs)  # type: ignore[arg-type]


def test_exceptions_are_ours() -> None:
    for cls in (AuthError, RateLimitedError, ServerError, SlotsBusyError, TransportError):
        assert issubclass(cls, ApiError)
