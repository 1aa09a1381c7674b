"""The sandbox speaks the real API: statuses, bodies, limits, the job model and every fault, checked
over real HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
import pytest

from orchestrator.errors import ConfigError
from orchestrator.sandbox import (
    CUSTOM_DB_CONNECTION_ID,
    DATABASE_CONNECTION_ID,
    DISABLED_CONNECTION_ID,
    SOCIAL_CONNECTION_ID,
    FaultPlan,
    SandboxServer,
    SandboxSettings,
    SandboxThread,
    add_arguments,
    settings_from_args,
)
from orchestrator.sandbox import main as sandbox_main
from tests.sandbox_helpers import (
    FakeClock,
    get_json,
    get_token,
    import_body,
    multipart_headers,
    post_import,
    run_job,
)

FAST: dict[str, Any] = {"job_latency": 0.0, "job_seconds": 0.05}
IMPORTS = "/api/v2/jobs/users-imports"
JOB_ID = re.compile(r"^job_[A-Za-z0-9]{16}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


# -- token endpoint ---------------------------------------------------------------------------------


async def test_token_grant_returns_a_jwt_with_scopes(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(token_lifetime=600)) as server:
        payload = {
            "grant_type": "client_credentials",
            "client_id": server.settings.client_id,
            "client_secret": server.settings.client_secret,
            "audience": f"{server.base_url}/api/v2/",
        }
        async with session.post(f"{server.base_url}/oauth/token", json=payload) as response:
            assert response.status == 200
            body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "create:users read:users read:connections"
    _header, claims_b64, signature = body["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    assert claims["scope"] == body["scope"]
    assert claims["aud"] == f"{server.base_url}/api/v2/"
    assert claims["sub"] == f"{server.settings.client_id}@clients"
    assert claims["exp"] - claims["iat"] == 600
    assert signature


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"audience": "https://elsewhere.example/api/v2/"}, 403, "access_denied"),
        ({"audience": ""}, 403, "access_denied"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": ""}, 400, "invalid_request"),
    ],
)
async def test_token_grant_errors(
    session: aiohttp.ClientSession, change: dict[str, str], status: int, error: str
) -> None:
    async with SandboxServer() as server:
        payload = {
            "grant_type": "client_credentials",
            "client_id": server.settings.client_id,
            "client_secret": server.settings.client_secret,
            "audience": f"https://{server.settings.domain}/api/v2/",
            **change,
        }
        async with session.post(f"{server.base_url}/oauth/token", data=payload) as response:
            assert response.status == status
            body = await response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert server.settings.client_secret not in json.dumps(body)


async def test_token_without_client_grant_is_403(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(client_granted=False)) as server:
        payload = {
            "grant_type": "client_credentials",
            "client_id": server.settings.client_id,
            "client_secret": server.settings.client_secret,
            "audience": f"https://{server.settings.domain}/api/v2/",
        }
        async with session.post(f"{server.base_url}/oauth/token", json=payload) as response:
            assert response.status == 403
            body = await response.json()
    assert body["error"] == "access_denied"
    assert "client-grant" in body["error_description"]


async def test_token_by_http_basic_client_auth(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        settings = server.settings
        basic = base64.b64encode(f"{settings.client_id}:{settings.client_secret}".encode())
        headers = {"Authorization": f"Basic {basic.decode()}"}
        payload = {"grant_type": "client_credentials", "audience": f"{server.base_url}/api/v2/"}
        url = f"{server.base_url}/oauth/token"
        async with session.post(url, data=payload, headers=headers) as response:
            assert response.status == 200


# -- authorization ----------------------------------------------------------------------------------


async def test_static_token_is_accepted(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(static_token="pasted-token", **FAST)) as server:
        status, _ = await post_import(session, server, "pasted-token", [{"email": "a@x.io"}])
        assert status == 202
        assert server.state.tokens_issued == 0


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Missing authentication"),
        ("Bearer not-a-token", "Invalid token"),
        ("Bearer a.b.c", "Invalid signature received for JSON Web Token validation"),
        ("Basic abc", "Missing authentication"),
    ],
)
async def test_bad_tokens_get_401(
    session: aiohttp.ClientSession, authorization: str | None, message: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with SandboxServer() as server:
        url = f"{server.base_url}/api/v2/jobs/job_AAAAAAAAAAAAAAAA"
        async with session.get(url, headers=headers) as response:
            assert response.status == 401
            body = await response.json()
    assert body == {
        "statusCode": 401,
        "error": "Unauthorized",
        "message": message,
        "errorCode": "invalid_token",
    }


async def test_missing_scope_is_403(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(scopes=("read:users",))) as server:
        token = await get_token(session, server)
        status, body = await post_import(session, server, token, [{"email": "a@x.io"}])
        assert status == 403
        assert body == {
            "statusCode": 403,
            "error": "Forbidden",
            "message": "Insufficient scope; expected any of: create:users.",
            "errorCode": "insufficient_scope",
        }
        # read:users is enough to read a job (reference §4)...
        status, _ = await get_json(session, server, token, "/api/v2/jobs/job_AAAAAAAAAAAAAAAA")
        assert status == 404
        # ...but not a connection.
        status, body = await get_json(
            session, server, token, f"/api/v2/connections/{DATABASE_CONNECTION_ID}"
        )
        assert status == 403


# -- POST users-imports -----------------------------------------------------------------------------


async def test_create_job_202_body_shape(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        body = import_body([{"email": "a@x.io"}], external_id="run-000001")
        url = f"{server.base_url}{IMPORTS}"
        async with session.post(url, data=body, headers=multipart_headers(token)) as response:
            assert response.status == 202
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"
            created = await response.json()
        assert list(created) == [
            "type",
            "status",
            "connection_id",
            "connection",
            "created_at",
            "id",
            "external_id",
        ]
        assert created["type"] == "users_import"
        assert created["status"] == "pending"
        assert created["connection_id"] == DATABASE_CONNECTION_ID
        assert created["connection"] == "Username-Password-Authentication"
        assert ISO_MS.match(created["created_at"])
        assert JOB_ID.match(created["id"])
        assert created["external_id"] == "run-000001"
        # go-auth0 sends an empty external_id; the real answer then has none (reference §1).
        status, other = await post_import(session, server, token, [{"email": "b@x.io"}])
        assert status == 202
        assert isinstance(other, dict)
        assert "external_id" not in other
        record = server.state.jobs()[0]
        assert record.id == created["id"]
        assert record.external_id == "run-000001"
        assert record.connection_id == DATABASE_CONNECTION_ID
        assert (record.upsert, record.send_completion_email) == (False, False)
        assert record.users == 1
        assert record.emails == ("a@x.io",)
        assert record.request_bytes == len(body)


def _padded_body(size: int) -> bytes:
    """An import body of exactly `size` bytes (padding inside a user's metadata)."""
    base = import_body([{"email": "pad@x.io", "user_metadata": {"p": ""}}])
    pad = "x" * (size - len(base))
    body = import_body([{"email": "pad@x.io", "user_metadata": {"p": pad}}])
    assert len(body) == size
    return body


async def test_413_is_about_the_whole_request(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(max_request_bytes=2000, **FAST)) as server:
        token = await get_token(session, server)
        url = f"{server.base_url}{IMPORTS}"
        headers = multipart_headers(token)
        async with session.post(url, data=_padded_body(2000), headers=headers) as response:
            assert response.status == 202
        async with session.post(url, data=_padded_body(2001), headers=headers) as response:
            assert response.status == 413
            body = await response.json()
        assert body == {
            "statusCode": 413,
            "error": "Request Entity Too Large",
            "message": "Payload content length greater than maximum allowed: 2000.",
        }
        assert len(server.state.jobs()) == 1


async def test_413_counts_bytes_of_a_chunked_upload(session: aiohttp.ClientSession) -> None:
    """Without a Content-Length the limit applies to the bytes actually read."""

    async def chunks() -> AsyncIterator[bytes]:
        body = _padded_body(5000)
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with SandboxServer(SandboxSettings(max_request_bytes=2000)) as server:
        token = await get_token(session, server)
        url = f"{server.base_url}{IMPORTS}"
        async with session.post(url, data=chunks(), headers=multipart_headers(token)) as response:
            assert response.status == 413
            assert response.request_info.headers.get("Transfer-Encoding") == "chunked"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": b""}, "Users file must not be empty."),
        ({"connection_id": None}, "Must provide 'connection_id' as multipart part."),
        (
            {"connection_id": "con_short"},
            (
                "Payload validation error: 'String does not match pattern ^con_[A-Za-z0-9]{16}$' "
                "on property connection_id"
            ),
        ),
        ({"connection_id": "con_AAAAAAAAAAAAAAAA"}, "The connection does not exist."),
        ({"connection_id": DISABLED_CONNECTION_ID}, "Connection must be enabled."),
        ({"connection_id": SOCIAL_CONNECTION_ID}, "Connection must be a database connection."),
        (
            {"connection_id": CUSTOM_DB_CONNECTION_ID},
            "Custom Database Connections without import mode are not allowed.",
        ),
        (
            {"upsert": "yes"},
            (
                "Payload validation error: 'Expected type boolean but found type string' "
                "on property upsert"
            ),
        ),
    ],
)
async def test_create_job_400s(
    session: aiohttp.ClientSession, kwargs: dict[str, Any], message: str
) -> None:
    users = kwargs.pop("users", [{"email": "a@x.io"}])
    async with SandboxServer() as server:
        token = await get_token(session, server)
        status, body = await post_import(session, server, token, users, **kwargs)
        assert status == 400
        assert body == {
            "statusCode": 400,
            "error": "Bad Request",
            "message": message,
            "errorCode": "invalid_body",
        }
        assert server.state.jobs() == []


async def test_create_job_without_users_part_or_multipart(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        token = await get_token(session, server)
        url = f"{server.base_url}{IMPORTS}"
        only_text = import_body(b"[]").split(b"--sandboxtestboundary0123456789abc\r\nContent-D")
        no_users = b"--sandboxtestboundary0123456789abc\r\nContent-D".join(only_text[:-1])
        no_users += b"--sandboxtestboundary0123456789abc--\r\n"
        async with session.post(url, data=no_users, headers=multipart_headers(token)) as response:
            assert response.status == 400
            assert (await response.json())["message"] == (
                "Must provide 'users' file as multipart part."
            )
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(url, json={"users": []}, headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["message"] == (
                "Payload validation error: 'Invalid multipart payload format'."
            )


async def test_slot_limit_429(session: aiohttp.ClientSession) -> None:
    settings = SandboxSettings(job_slots=3, job_latency=0, job_seconds=30)
    async with SandboxServer(settings) as server:
        token = await get_token(session, server)
        for _ in range(3):
            status, _ = await post_import(session, server, token, [{"email": "a@x.io"}])
            assert status == 202
        status, body = await post_import(session, server, token, [{"email": "a@x.io"}])
        assert status == 429
        assert body == {
            "statusCode": 429,
            "error": "Too Many Requests",
            "message": "There are 3 active import users jobs, please wait until some of them "
            "are finished and try again",
            "errorCode": "too_many_requests",
        }
        assert server.state.too_many_requests["job_slots"] == 1
        assert server.state.peak_active_jobs == 3
        assert server.state.active_jobs == 3
        assert len(server.state.jobs()) == 3


async def test_slots_free_when_jobs_end(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    settings = SandboxSettings(job_slots=2, job_latency=1, job_seconds=10)
    async with SandboxServer(settings, clock=clock) as server:
        token = await get_token(session, server)
        for _ in range(2):
            assert (await post_import(session, server, token, [{"email": "a@x.io"}]))[0] == 202
            clock.advance(4)
        assert (await post_import(session, server, token, [{"email": "a@x.io"}]))[0] == 429
        clock.advance(3.0)  # the first job ended at 11 s
        assert (await post_import(session, server, token, [{"email": "b@x.io"}]))[0] == 202
        intervals = server.state.slot_intervals()
        assert intervals == [(0.0, 11.0), (4.0, 15.0), (11.0, 22.0)]
        assert server.state.peak_active_jobs == 2


# -- rate limit -------------------------------------------------------------------------------------


async def test_rate_limit_headers_and_429(session: aiohttp.ClientSession) -> None:
    settings = SandboxSettings(rate_limit_per_second=1, rate_limit_burst=3)
    async with SandboxServer(settings, clock=FakeClock()) as server:
        token = await get_token(session, server)  # 1 of 3
        path = "/api/v2/jobs/job_AAAAAAAAAAAAAAAA"
        headers = {"Authorization": f"Bearer {token}"}
        seen: list[tuple[int, Any]] = []
        for _ in range(3):
            async with session.get(f"{server.base_url}{path}", headers=headers) as response:
                seen.append((response.status, response.headers))
                body = await response.json()
        assert [status for status, _ in seen] == [404, 404, 429]
        assert [h["x-ratelimit-limit"] for _, h in seen] == ["3", "3", "3"]
        assert [h["x-ratelimit-remaining"] for _, h in seen] == ["1", "0", "0"]
        reset = int(seen[-1][1]["x-ratelimit-reset"])
        assert time.time() - 1 <= reset <= time.time() + 2
        assert "Retry-After" not in seen[-1][1]
        assert body == {
            "statusCode": 429,
            "error": "Too Many Requests",
            "message": "Global limit has been reached",
            "errorCode": "too_many_requests",
        }
        assert server.state.too_many_requests["rate_limit"] == 1


async def test_rate_limit_refills_and_retry_after(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    settings = SandboxSettings(
        rate_limit_per_second=2, rate_limit_burst=1, rate_limit_retry_after=True
    )
    async with SandboxServer(settings, clock=clock) as server:
        url = f"{server.base_url}/api/v2/users-by-email?email=a@x.io"
        async with session.get(url) as response:
            assert response.status == 401
        async with session.get(url) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "1"
        clock.advance(0.5)
        async with session.get(url) as response:
            assert response.status == 401


async def test_unlimited_sandbox_sends_no_rate_headers(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        url = f"{server.base_url}/api/v2/users-by-email"
        async with session.get(url) as response:
            assert response.status == 401
            assert "x-ratelimit-limit" not in response.headers


# -- job lifecycle ----------------------------------------------------------------------------------


async def test_job_lifecycle_on_a_clock(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    settings = SandboxSettings(
        job_latency=1, job_seconds=10, expire_after=100, retention=1000, token_lifetime=5000
    )
    async with SandboxServer(settings, clock=clock) as server:
        token = await get_token(session, server)
        status, created = await post_import(
            session, server, token, [{"email": "a@x.io"}, {"email": "b@x.io"}], external_id="e-1"
        )
        assert status == 202
        assert isinstance(created, dict)
        path = f"/api/v2/jobs/{created['id']}"

        async def job() -> dict[str, Any]:
            status, body = await get_json(session, server, token, path)
            assert status == 200
            assert isinstance(body, dict)
            return body

        assert (await job())["status"] == "pending"
        clock.advance(3.5)  # 2.5 s into 10 s of processing
        body = await job()
        assert body["status"] == "processing"
        assert body["percentage_done"] == 25
        assert body["time_left_seconds"] == 8
        assert body["external_id"] == "e-1"
        clock.advance(8)
        body = await job()
        assert body["status"] == "completed"
        assert body["summary"] == {"failed": 0, "updated": 0, "inserted": 2, "total": 2}
        assert "percentage_done" not in body
        clock.advance(100)
        assert (await job())["status"] == "expired"
        assert (await job())["summary"]["inserted"] == 2
        clock.advance(1000)
        status, gone = await get_json(session, server, token, path)
        assert status == 404
        assert gone == {
            "statusCode": 404,
            "error": "Not Found",
            "message": "Job not found.",
            "errorCode": "inexistent_job",
        }
        assert server.state.jobs()[0].status == "deleted"


async def test_retention_deletes_job_records_not_users(session: aiohttp.ClientSession) -> None:
    """After `retention` a job's record and errors are gone; the users it imported stay in the
    tenant, with their created_at on the sandbox's (offset) clock."""
    clock = FakeClock()
    settings = SandboxSettings(
        job_latency=0, job_seconds=2, retention=100, token_lifetime=5000, clock_offset=3600
    )
    async with SandboxServer(settings, clock=clock) as server:
        started = time.time()
        token = await get_token(session, server)
        users = [{"email": "kept@x.io"}, {"email": "kept@x.io"}]
        status, created = await post_import(session, server, token, users)
        assert status == 202
        assert isinstance(created, dict)
        job, errors = f"/api/v2/jobs/{created['id']}", f"/api/v2/jobs/{created['id']}/errors"
        clock.advance(2)
        assert (await get_json(session, server, token, job))[0] == 200
        assert (await get_json(session, server, token, errors))[0] == 200
        clock.advance(98)
        status, gone = await get_json(session, server, token, job)
        assert (status, gone) == (
            404,
            {
                "statusCode": 404,
                "error": "Not Found",
                "message": "Job not found.",
                "errorCode": "inexistent_job",
            },
        )
        status, gone = await get_json(session, server, token, errors)
        assert status == 404
        assert isinstance(gone, dict)
        assert gone["message"] == "The job does not exist."
        status, found = await get_json(
            session, server, token, "/api/v2/users-by-email?email=kept@x.io"
        )
        assert status == 200
        assert isinstance(found, list)
        (user,) = found
        assert server.state.user_count == 1
        # The job ended 2 s after the sandbox started, on a clock 3600 s ahead.
        created_at = datetime.fromisoformat(user["created_at"]).timestamp()
        assert started + 3600 + 2 - 1 <= created_at <= time.time() + 3600 + 2 + 1
        assert user["updated_at"] == user["created_at"]


async def test_job_id_pattern_and_unknown_job(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        token = await get_token(session, server)
        status, body = await get_json(session, server, token, "/api/v2/jobs/job_123")
        assert status == 400
        assert isinstance(body, dict)
        assert "^job_[A-Za-z0-9]{16}$" in str(body["message"])
        status, _ = await get_json(session, server, token, "/api/v2/jobs/job_AAAAAAAAAAAAAAAA")
        assert status == 404
        path = "/api/v2/jobs/job_AAAAAAAAAAAAAAAA/errors"
        status, body = await get_json(session, server, token, path)
        assert status == 404


async def test_job_time_scales_with_users(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    settings = SandboxSettings(job_latency=0, job_seconds=1, job_seconds_per_user=0.5)
    async with SandboxServer(settings, clock=clock) as server:
        token = await get_token(session, server)
        users = [{"email": f"u{i}@x.io"} for i in range(4)]
        await post_import(session, server, token, users)
        assert server.state.jobs()[0].ended == pytest.approx(3.0)


async def test_unparseable_file_fails_the_job(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        for users in (b"[{not json", b'{"email": "a@x.io"}'):
            body = await run_job(session, server, token, users)
            assert body["status"] == "failed"
            assert body["status_details"] == "Failed to parse users file"
            assert "summary" not in body
            path = f"/api/v2/jobs/{body['id']}/errors"
            status, errors = await get_json(session, server, token, path)
            assert (status, errors) == (204, None)
        assert server.state.user_count == 0


async def test_empty_array_completes_with_zero_users(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        body = await run_job(session, server, token, [])
        assert body["status"] == "completed"
        assert body["summary"] == {"failed": 0, "updated": 0, "inserted": 0, "total": 0}


# -- per-user outcomes ------------------------------------------------------------------------------


async def test_duplicates_and_upsert(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        first = [{"email": "Chuck@x.io", "user_metadata": {"v": 1}, "username": "chuck"}]
        body = await run_job(session, server, token, first)
        assert body["summary"] == {"failed": 0, "updated": 0, "inserted": 1, "total": 1}

        again = [{"email": "chuck@x.io", "email_verified": True}]
        body = await run_job(session, server, token, again)
        assert body["status"] == "completed"
        assert body["summary"] == {"failed": 1, "updated": 0, "inserted": 0, "total": 1}
        path = f"/api/v2/jobs/{body['id']}/errors"
        async with session.get(
            f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            errors = await response.json()
        assert errors == [
            {
                "user": {"email": "chuck@x.io", "email_verified": True},
                "errors": [
                    {
                        "code": "DUPLICATED_USER",
                        "message": "The user already exist and upsert parameter is false",
                    }
                ],
            }
        ]

        update = [{"email": "chuck@x.io", "user_metadata": {"v": 2}}]
        body = await run_job(session, server, token, update, upsert=True)
        assert body["summary"] == {"failed": 0, "updated": 1, "inserted": 0, "total": 1}
        status, found = await get_json(
            session, server, token, "/api/v2/users-by-email?email=CHUCK%40x.io"
        )
        assert status == 200
        assert isinstance(found, list)
        assert len(found) == 1
        assert found[0]["user_metadata"] == {"v": 2}

        clash = [{"email": "other@x.io", "username": "chuck"}]
        body = await run_job(session, server, token, clash, upsert=True)
        assert body["summary"]["failed"] == 1
        assert server.state.jobs()[-1].upsert is True


async def test_duplicates_inside_one_file(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        users = [{"email": "a@x.io"}, {"email": "A@x.io"}, {"email": "b@x.io", "user_id": "1"}]
        users.append({"email": "c@x.io", "user_id": "1"})
        body = await run_job(session, server, token, users, upsert=True)
        assert body["summary"] == {"failed": 2, "updated": 0, "inserted": 2, "total": 4}
        status, errors = await get_json(session, server, token, f"/api/v2/jobs/{body['id']}/errors")
        assert status == 200
        assert isinstance(errors, list)
        messages = [entry["errors"][0]["message"] for entry in errors]
        assert messages == [
            "A user with this email was already provided.",
            "A user with this user_id was already provided.",
        ]


async def test_schema_errors_and_redaction(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        users: list[object] = [
            {"email_verified": True, "password_hash": "$2b$10$secretsecret"},
            {"email": "not-an-email"},
            {"email": "x@x.io", "created_at": "2020-01-01"},
            {"email": 7},
            {
                "email": "y@x.io",
                "custom_password_hash": {
                    "algorithm": "nope",
                    "hash": {"value": "deadbeef", "encoding": "hex"},
                },
            },
            "not an object",
        ]
        body = await run_job(session, server, token, users)
        assert body["summary"] == {"failed": 6, "updated": 0, "inserted": 0, "total": 6}
        status, errors = await get_json(session, server, token, f"/api/v2/jobs/{body['id']}/errors")
        assert status == 200
        assert isinstance(errors, list)
        codes = [[(e["code"], e.get("path")) for e in entry["errors"]] for entry in errors]
        assert codes == [
            [("OBJECT_REQUIRED", "email")],
            [("FORMAT", "email")],
            [("OBJECT_ADDITIONAL_PROPERTIES", "created_at")],
            [("INVALID_TYPE", "email")],
            [("ENUM_MISMATCH", "custom_password_hash.algorithm")],
            [("INVALID_TYPE", "")],
        ]
        assert errors[0]["user"]["password_hash"] == "*****"
        assert errors[4]["user"]["custom_password_hash"]["hash"] == {
            "value": "*****",
            "encoding": "hex",
        }
        assert "secretsecret" not in json.dumps(errors)
        assert "deadbeef" not in json.dumps(errors)


async def test_aged_users_were_written_that_long_ago(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": "old@example.com", "user_id": "o1"}])
        (before,) = server.state.users_by_email("old@example.com")
        server.state.age_users(86_400)
        (after,) = server.state.users_by_email("old@example.com")
        for name in ("created_at", "updated_at"):
            moved = datetime.fromisoformat(str(before[name])) - datetime.fromisoformat(
                str(after[name])
            )
            assert moved == timedelta(days=1)
            assert str(after[name]).endswith("Z")


async def test_users_by_email_shape(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        users: list[dict[str, object]] = [
            {"email": "auzironian@example.com", "email_verified": True, "user_id": "abc"}
        ]
        users[0]["password_hash"] = "$2b$10$hash"
        await run_job(session, server, token, users)
        path = "/api/v2/users-by-email?email=auzironian%40example.com"
        status, found = await get_json(session, server, token, path)
        assert status == 200
        assert isinstance(found, list)
        (user,) = found
        assert list(user)[:9] == [
            "email",
            "email_verified",
            "created_at",
            "updated_at",
            "identities",
            "user_id",
            "name",
            "picture",
            "nickname",
        ]
        assert user["user_id"] == "auth0|abc"
        assert user["identities"] == [
            {
                "provider": "auth0",
                "connection": "Username-Password-Authentication",
                "isSocial": False,
                "user_id": "abc",
            }
        ]
        assert user["nickname"] == "auzironian"
        assert user["name"] == "auzironian@example.com"
        assert user["picture"].startswith("https://secure.gravatar.com/avatar/")
        assert "password_hash" not in user
        status, none = await get_json(session, server, token, "/api/v2/users-by-email?email=n@x.io")
        assert (status, none) == (200, [])


async def test_connections_endpoint(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        token = await get_token(session, server)
        path = f"/api/v2/connections/{DATABASE_CONNECTION_ID}"
        status, body = await get_json(session, server, token, path)
        assert status == 200
        assert isinstance(body, dict)
        assert body["strategy"] == "auth0"
        assert body["enabled_clients"] == [server.settings.client_id]
        assert body["realms"] == ["Username-Password-Authentication"]
        status, body = await get_json(
            session, server, token, f"/api/v2/connections/{SOCIAL_CONNECTION_ID}"
        )
        assert isinstance(body, dict)
        assert body["strategy"] == "google-oauth2"
        status, _ = await get_json(session, server, token, "/api/v2/connections/con_nope")
        assert status == 404


async def test_connections_by_name_and_strategy(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        token = await get_token(session, server)
        _, by_id = await get_json(
            session, server, token, f"/api/v2/connections/{DATABASE_CONNECTION_ID}"
        )
        path = "/api/v2/connections?name=Username-Password-Authentication"
        status, found = await get_json(session, server, token, path)
        assert (status, found) == (200, [by_id])
        status, none = await get_json(session, server, token, "/api/v2/connections?name=Nope")
        assert (status, none) == (200, [])

        async def ids(query: str) -> list[str]:
            status, body = await get_json(session, server, token, f"/api/v2/connections{query}")
            assert status == 200
            assert isinstance(body, list)
            return [connection["id"] for connection in body]

        database = [DATABASE_CONNECTION_ID, DISABLED_CONNECTION_ID, CUSTOM_DB_CONNECTION_ID]
        assert await ids("?strategy=auth0") == database
        assert await ids("?strategy=auth0&strategy=google-oauth2") == [
            *database[:2],
            SOCIAL_CONNECTION_ID,
            database[2],
        ]
        assert await ids("?name=google-oauth2&strategy=auth0") == []
        assert len(await ids("")) == 4
    async with SandboxServer(SandboxSettings(scopes=("read:users",))) as server:
        token = await get_token(session, server)
        status, body = await get_json(session, server, token, "/api/v2/connections?name=x")
        assert status == 403
        assert body == {
            "statusCode": 403,
            "error": "Forbidden",
            "message": "Insufficient scope; expected any of: read:connections.",
            "errorCode": "insufficient_scope",
        }


def test_connection_ids_match_the_api_pattern() -> None:
    pattern = re.compile(r"^con_[A-Za-z0-9]{16}$")
    ids = (
        DATABASE_CONNECTION_ID,
        DISABLED_CONNECTION_ID,
        SOCIAL_CONNECTION_ID,
        CUSTOM_DB_CONNECTION_ID,
    )
    assert all(pattern.match(connection_id) for connection_id in ids)


# -- faults -----------------------------------------------------------------------------------------


async def test_fail_requests_matching_a_path(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        server.state.faults.fail_requests(1, status=502, method="POST", path_prefix=IMPORTS)
        server.state.faults.fail_requests(1, status=503)
        status, _ = await get_json(session, server, token, "/api/v2/jobs/job_AAAAAAAAAAAAAAAA")
        assert status == 503
        body = import_body([{"email": "a@x.io"}])
        url = f"{server.base_url}{IMPORTS}"
        async with session.post(url, data=body, headers=multipart_headers(token)) as response:
            assert response.status == 502
            assert response.headers["Content-Type"].startswith("text/html")
        assert (await post_import(session, server, token, [{"email": "a@x.io"}]))[0] == 202
        assert [r.status for r in server.state.requests][-3:] == [503, 502, 202]
        assert server.state.faults.fired["fail_requests"] == 2


async def test_reset_requests_drop_the_connection(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        path = "/api/v2/jobs/job_AAAAAAAAAAAAAAAA"
        # aiohttp's client silently retries an idempotent request once after a disconnect...
        server.state.faults.reset_requests(1, path_prefix="/api/v2/jobs/")
        assert (await get_json(session, server, token, path))[0] == 404
        assert [r.status for r in server.state.requests][-2:] == [0, 404]
        # ...so two resets in a row reach the caller.
        server.state.faults.reset_requests(2, method="GET")
        with pytest.raises(aiohttp.ClientConnectionError):
            await get_json(session, server, token, path)
        assert [r.status for r in server.state.requests][-2:] == [0, 0]
        # A POST is never retried by aiohttp: one reset is enough.
        server.state.faults.reset_requests(1, method="POST")
        with pytest.raises(aiohttp.ClientConnectionError):
            await post_import(session, server, token, [{"email": "a@x.io"}])
        assert server.state.jobs() == []
        assert server.state.faults.fired["reset_requests"] == 4


async def test_reset_after_create_is_ambiguous(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(
        SandboxSettings(faults=FaultPlan(reset_after_create=1), **FAST)
    ) as server:
        token = await get_token(session, server)
        with pytest.raises(aiohttp.ClientConnectionError):
            await post_import(session, server, token, [{"email": "a@x.io"}], external_id="c-1")
        (record,) = server.state.jobs()
        assert record.external_id == "c-1"
        assert record.response_dropped is True
        assert (await post_import(session, server, token, [{"email": "b@x.io"}]))[0] == 202
        assert len(server.state.jobs()) == 2


async def test_fail_jobs(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        server.state.faults.fail_jobs(1, details="Job timed out")
        body = await run_job(session, server, token, [{"email": "a@x.io"}])
        assert body["status"] == "failed"
        assert body["status_details"] == "Job timed out"
        path = f"/api/v2/jobs/{body['id']}/errors"
        assert (await get_json(session, server, token, path))[0] == 204
        server.state.faults.errors_generic_form = True
        status, generic = await get_json(session, server, token, path)
        assert status == 200
        assert isinstance(generic, dict)
        assert generic["status"] == "failed"
        assert generic["id"] == body["id"]
        assert server.state.user_count == 0
        assert (await run_job(session, server, token, [{"email": "a@x.io"}]))[
            "status"
        ] == "completed"


async def test_injected_rate_limit_429s(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        server.state.faults.rate_limit_429s(2)
        for _ in range(2):
            async with session.post(f"{server.base_url}/oauth/token", data={}) as response:
                assert response.status == 429
                reset = int(response.headers["x-ratelimit-reset"])
                assert response.headers["x-ratelimit-remaining"] == "0"
                assert time.time() <= reset <= time.time() + 2
                body = await response.json()
                assert body["error"] == "too_many_requests"
        token = await get_token(session, server)
        assert token
        assert server.state.too_many_requests["injected_rate_limit"] == 2


async def test_latency(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(
        SandboxSettings(faults=FaultPlan(latency=0.1, latency_max=0.15))
    ) as server:
        started = time.monotonic()
        async with session.get(f"{server.base_url}/api/v2/users-by-email") as response:
            assert response.status == 401
        assert time.monotonic() - started >= 0.1


async def test_expire_tokens(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        token = await get_token(session, server)
        path = "/api/v2/jobs/job_AAAAAAAAAAAAAAAA"
        assert (await get_json(session, server, token, path))[0] == 404
        assert server.state.revoke_tokens() == 1
        status, body = await get_json(session, server, token, path)
        assert status == 401
        assert isinstance(body, dict)
        assert body["message"] == "Expired token received for JSON Web Token validation"
        fresh = await get_token(session, server)
        assert (await get_json(session, server, fresh, path))[0] == 404


async def test_token_expires_after_its_lifetime(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with SandboxServer(SandboxSettings(token_lifetime=60), clock=clock) as server:
        token = await get_token(session, server)
        path = "/api/v2/jobs/job_AAAAAAAAAAAAAAAA"
        clock.advance(59.9)
        assert (await get_json(session, server, token, path))[0] == 404
        clock.advance(0.1)
        assert (await get_json(session, server, token, path))[0] == 401


async def test_lost_and_poisoned_users(session: aiohttp.ClientSession) -> None:
    plan = FaultPlan(lose_users=frozenset({"lost@x.io"}), poisoned_users={"bad@x.io": "CONFLICT"})
    async with SandboxServer(SandboxSettings(faults=plan, **FAST)) as server:
        token = await get_token(session, server)
        users = [{"email": "lost@x.io"}, {"email": "Bad@x.io"}, {"email": "ok@x.io"}]
        body = await run_job(session, server, token, users)
        assert body["summary"] == {"failed": 1, "updated": 0, "inserted": 2, "total": 3}
        status, errors = await get_json(session, server, token, f"/api/v2/jobs/{body['id']}/errors")
        assert status == 200
        assert isinstance(errors, list)
        assert errors[0]["errors"][0]["code"] == "CONFLICT"
        for email, expected in (("lost@x.io", 0), ("ok@x.io", 1)):
            path = f"/api/v2/users-by-email?email={email}"
            _, found = await get_json(session, server, token, path)
            assert isinstance(found, list)
            assert len(found) == expected


async def test_echo_token_errors_quote_the_bearer_token(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(faults=FaultPlan(echo_token_errors=1))) as server:
        token = await get_token(session, server)
        unknown = "/api/v2/jobs/job_AAAAAAAAAAAAAAAA"
        # Answers that are not errors do not use the fault up.
        assert (await get_json(session, server, token, "/api/v2/connections"))[0] == 200
        status, body = await get_json(session, server, token, unknown)
        assert status == 404
        assert isinstance(body, dict)
        assert body["message"] == f"Job not found. (Authorization: Bearer {token})"
        assert body["errorCode"] == "inexistent_job"
        status, body = await get_json(session, server, token, unknown)
        assert isinstance(body, dict)
        assert body["message"] == "Job not found."
        # Armed over HTTP: a rejected token is quoted too; a request without one is left alone.
        async with session.post(
            f"{server.base_url}/sandbox/faults", json={"echo_token_errors": 2}
        ) as response:
            assert (await response.json())["faults"]["echo_token_errors"] == 2
        async with session.get(f"{server.base_url}{unknown}") as response:
            assert (await response.json())["message"] == "Missing authentication"
        status, body = await get_json(session, server, "a.b.c", unknown)
        assert status == 401
        assert isinstance(body, dict)
        assert body["message"] == (
            "Invalid signature received for JSON Web Token validation (Authorization: Bearer a.b.c)"
        )
        # The token endpoint is not the Management API: its errors never quote anything.
        async with session.post(
            f"{server.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            assert token not in await response.text()
        assert server.state.faults.pending()["echo_token_errors"] == 1
        assert server.state.faults.fired["echo_token_errors"] == 2


async def test_clock_offset_moves_every_wall_time(session: aiohttp.ClientSession) -> None:
    offset = -7200.0
    settings = SandboxSettings(
        clock_offset=offset, rate_limit_per_second=1, rate_limit_burst=3, **FAST
    )

    def near(seconds: float, slack: float = 3) -> bool:
        skewed = time.time() + offset
        return skewed - slack <= seconds <= skewed + slack

    def date_of(response: aiohttp.ClientResponse) -> float:
        return parsedate_to_datetime(response.headers["Date"]).timestamp()

    async with SandboxServer(settings) as server:
        payload = {
            "grant_type": "client_credentials",
            "client_id": server.settings.client_id,
            "client_secret": server.settings.client_secret,
            "audience": f"https://{server.settings.domain}/api/v2/",
        }
        async with session.post(f"{server.base_url}/oauth/token", data=payload) as response:
            assert near(date_of(response))
            assert near(int(response.headers["x-ratelimit-reset"]))
            token = (await response.json())["access_token"]
        _, claims_b64, _ = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
        assert near(claims["iat"])
        status, created = await post_import(session, server, token, [{"email": "a@x.io"}])
        assert status == 202
        assert isinstance(created, dict)
        assert near(datetime.fromisoformat(created["created_at"]).timestamp())
        # Error answers carry the skewed Date too: a 401, the router's 404, a rate-limit 429 ...
        for path in ("/api/v2/users-by-email", "/api/v2/nope", "/api/v2/nope"):
            async with session.get(f"{server.base_url}{path}") as response:
                assert response.status in {401, 404, 429}
                assert near(date_of(response))
        assert server.state.too_many_requests["rate_limit"] >= 1
        # ... an injected 502 (HTML), and the control endpoints.
        server.state.faults.fail_requests(1, status=502)
        async with session.get(f"{server.base_url}/api/v2/nope") as response:
            assert response.status == 502
            assert near(date_of(response))
        async with session.get(f"{server.base_url}/sandbox/state") as response:
            assert near(date_of(response))


# -- the record and the control endpoints -----------------------------------------------------------


async def test_state_and_faults_over_http(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        faults = {"fail_jobs": {"count": 1, "details": "boom"}, "fail_requests": 1}
        async with session.post(f"{server.base_url}/sandbox/faults", json=faults) as response:
            assert response.status == 200
            armed = (await response.json())["faults"]
        assert (armed["fail_jobs"], armed["fail_requests"]) == (1, 1)
        assert (await post_import(session, server, token, [{"email": "a@x.io"}]))[0] == 503
        body = await run_job(session, server, token, [{"email": "a@x.io"}])
        assert body["status_details"] == "boom"
        async with session.post(
            f"{server.base_url}/sandbox/faults", json={"expire_tokens": True}
        ) as response:
            assert response.status == 200
        assert (await get_json(session, server, token, f"/api/v2/jobs/{body['id']}"))[0] == 401
        async with session.post(f"{server.base_url}/sandbox/faults", json={"bogus": 1}) as response:
            assert response.status == 400
        async with session.get(f"{server.base_url}/sandbox/state") as response:
            state = await response.json()
        assert state["jobs"][0]["status"] == "failed"
        assert state["jobs"][0]["emails"] == ["a@x.io"]
        assert state["faults_fired"] == {"fail_requests": 1, "fail_jobs": 1, "expire_tokens": 1}
        statuses = [status for _, _, status, _ in state["requests"]]
        assert statuses[:2] == [200, 503]
        assert state["request_count"] == len(state["requests"])
        async with session.get(f"{server.base_url}/sandbox/state?requests=0") as response:
            assert (await response.json())["requests"] is None


async def test_unknown_route_uses_the_envelope(session: aiohttp.ClientSession) -> None:
    async with SandboxServer() as server:
        url = f"{server.base_url}/api/v2/nope"
        async with session.get(url) as response:
            assert response.status == 404
            assert (await response.json())["statusCode"] == 404


def test_sandbox_thread_from_sync_code() -> None:
    with SandboxThread(SandboxSettings(**FAST)) as server:
        data = (
            "grant_type=client_credentials"
            f"&client_id={server.settings.client_id}"
            f"&client_secret={server.settings.client_secret}"
            f"&audience=https://{server.settings.domain}/api/v2/"
        ).encode()
        with urllib.request.urlopen(f"{server.base_url}/oauth/token", data=data) as response:
            assert response.status == 200
        server.state.faults.fail_jobs(3)
        with urllib.request.urlopen(f"{server.base_url}/sandbox/state") as response:
            state = orjson.loads(response.read())
        assert state["faults"]["fail_jobs"] == 3
        assert server.state.tokens_issued == 1
        assert server.state.request_count == 1


# -- settings and command line ----------------------------------------------------------------------


def test_settings_refuse_non_loopback_hosts() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        SandboxSettings(host="0.0.0.0")
    with pytest.raises(ConfigError):
        SandboxSettings(job_slots=0)
    with pytest.raises(ConfigError):
        FaultPlan(poisoned_users={"a@x.io": "NOT_A_CODE"})


def test_settings_from_args() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(
        [
            "--port", "0", "--job-slots", "3", "--job-seconds", "0.1", "--fail-jobs", "2",
            "--poison", "a@x.io", "--poison", "b@x.io=PATTERN", "--no-rate-limit",
            "--reset-after-create", "1", "--latency", "0.2", "--no-password-grant",
            "--clock-offset", "-300", "--echo-token-errors", "2",
        ]
    )  # fmt: skip
    settings = settings_from_args(ns)
    assert (settings.port, settings.job_slots, settings.job_seconds) == (0, 3, 0.1)
    assert settings.rate_limit_per_second is None
    assert settings.faults.fail_jobs == 2
    assert settings.faults.reset_after_create == 1
    assert settings.faults.poisoned_users == {"a@x.io": "CONFLICT", "b@x.io": "PATTERN"}
    assert (settings.password_grant, settings.clock_offset) == (False, -300.0)
    assert settings.faults.echo_token_errors == 2
    default = settings_from_args(parser.parse_args([]))
    assert (default.password_grant, default.clock_offset) == (True, 0.0)
    assert (default.port, default.rate_limit_per_second, default.rate_limit_burst) == (
        8765,
        2.0,
        10,
    )


def test_python_m_sandbox_prints_the_environment_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]
        assert lines[1].startswith("export AUTH0_BASE_URL=http://127.0.0.1:")
        assert lines[2] == "export AUTH0_DOMAIN=sandbox.local\n"
        base_url = lines[1].strip().split("=", 1)[1]
        with urllib.request.urlopen(f"{base_url}/sandbox/state") as response:
            assert response.status == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_main_rejects_a_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_main(["--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_main_reports_a_taken_port(capsys: pytest.CaptureFixture[str]) -> None:
    with SandboxThread() as server:
        assert sandbox_main(["--port", str(server.port)]) == 2
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
