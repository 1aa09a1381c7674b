"""Helpers for tests that talk to the sandbox over real HTTP: a token, a hand-built import request, a
job run to its end, a password login.

The multipart body is built here byte by byte (go-auth0's layout, reference §12.1) rather than with the
client's encoder, so sandbox tests control the exact request size and do not depend on client code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from orchestrator.sandbox import (
    DATABASE_CONNECTION_ID,
    DATABASE_CONNECTION_NAME,
    SandboxServer,
    SandboxThread,
)

PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm"

BOUNDARY = "sandboxtestboundary0123456789abc"


@dataclass
class FakeClock:
    """A clock tests move by hand: the sandbox's job model and token expiry follow it."""

    t: float = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def text_part(name: str, value: str, boundary: str = BOUNDARY) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    )


def users_part(users: bytes, boundary: str = BOUNDARY) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="users"; filename="users.json"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode()
    return head + users + b"\r\n"


def import_body(
    users: bytes | Sequence[object],
    *,
    connection_id: str | None = DATABASE_CONNECTION_ID,
    upsert: bool | str = False,
    external_id: str = "",
    send_completion_email: bool | str = False,
    boundary: str = BOUNDARY,
) -> bytes:
    """A users-imports body: text parts first, users file last; `connection_id=None` omits it."""
    if not isinstance(users, bytes):
        users = orjson.dumps(list(users))

    def flag(value: bool | str) -> str:
        return value if isinstance(value, str) else ("true" if value else "false")

    parts = [
        text_part("connection_id", connection_id, boundary) if connection_id is not None else b"",
        text_part("upsert", flag(upsert), boundary),
        text_part("external_id", external_id, boundary),
        text_part("send_completion_email", flag(send_completion_email), boundary),
        users_part(users, boundary),
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def multipart_headers(token: str, boundary: str = BOUNDARY) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }


async def get_token(session: aiohttp.ClientSession, server: SandboxServer | SandboxThread) -> str:
    """A Management API token from the sandbox's client-credentials grant."""
    payload = {
        "grant_type": "client_credentials",
        "client_id": server.settings.client_id,
        "client_secret": server.settings.client_secret,
        "audience": f"https://{server.settings.domain}/api/v2/",
    }
    async with session.post(f"{server.base_url}/oauth/token", data=payload) as response:
        assert response.status == 200, await response.text()
        token = (await response.json())["access_token"]
        assert isinstance(token, str)
        return token


async def post_import(
    session: aiohttp.ClientSession,
    server: SandboxServer,
    token: str,
    users: bytes | Sequence[object],
    **fields: object,
) -> tuple[int, object]:
    """POST an import; returns (status, parsed JSON body or None)."""
    body = import_body(users, **fields)  # type: ignore[arg-type]
    url = f"{server.base_url}/api/v2/jobs/users-imports"
    async with session.post(url, data=body, headers=multipart_headers(token)) as response:
        payload = await response.read()
        return response.status, orjson.loads(payload) if payload else None


async def get_json(
    session: aiohttp.ClientSession, server: SandboxServer, token: str, path: str
) -> tuple[int, object]:
    """GET an /api/v2 path; returns (status, parsed JSON body or None for an empty body)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{server.base_url}{path}", headers=headers) as response:
        payload = await response.read()
        return response.status, orjson.loads(payload) if payload else None


async def wait_terminal(
    session: aiohttp.ClientSession, server: SandboxServer, token: str, job_id: str
) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job is no longer pending or processing; returns its body."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = await get_json(session, server, token, f"/api/v2/jobs/{job_id}")
        assert status == 200
        assert isinstance(body, dict)
        if body["status"] not in {"pending", "processing"}:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError("job never finished")


async def run_job(
    session: aiohttp.ClientSession,
    server: SandboxServer,
    token: str,
    users: Sequence[object] | bytes,
    **fields: object,
) -> dict[str, Any]:
    """POST an import (it must be accepted) and wait for its terminal body."""
    status, created = await post_import(session, server, token, users, **fields)
    assert status == 202, created
    assert isinstance(created, dict)
    return await wait_terminal(session, server, token, created["id"])


async def login(
    session: aiohttp.ClientSession,
    server: SandboxServer,
    username: str,
    password: str,
    **params: str,
) -> tuple[int, dict[str, Any]]:
    """A password-realm login (form body) into the database connection; returns (status, body)."""
    payload = {
        "grant_type": PASSWORD_REALM,
        "client_id": server.settings.client_id,
        "client_secret": server.settings.client_secret,
        "username": username,
        "password": password,
        "realm": DATABASE_CONNECTION_NAME,
        **params,
    }
    async with session.post(f"{server.base_url}/oauth/token", data=payload) as response:
        body = await response.json()
        assert isinstance(body, dict)
        return response.status, body
