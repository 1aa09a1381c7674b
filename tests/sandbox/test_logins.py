"""Password logins against the sandbox (the password-realm grant) and the password rules of imports,
over real HTTP on 127.0.0.1: imported hashes are really checked, never shown, and set only once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import bcrypt
import orjson
import pytest
from argon2 import PasswordHasher

from orchestrator.sandbox import SandboxServer, SandboxSettings
from tests.sandbox_helpers import PASSWORD_REALM, get_json, get_token, login, run_job

FAST: dict[str, Any] = {"job_latency": 0.0, "job_seconds": 0.05}
PASSWORD = "Tr0ub4dor&3-sandbox"
EMAIL = "ada@example.com"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(scope="module")
def bcrypt_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def claims_of(jwt: str, key: bytes | None = None) -> dict[str, Any]:
    header, payload, signature = jwt.split(".")
    if key is not None:
        expected = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(claims, dict)
    return claims


def pbkdf2_phc(password: str, *, padded: bool = False) -> str:
    salt = b"\xfb\xffsalt"
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000, 32)

    def b64(data: bytes) -> str:
        text = base64.b64encode(data).decode()
        return text if padded else text.rstrip("=")

    return f"$pbkdf2-sha256$i=1000,l=32${b64(salt)}${b64(key)}"


# -- the grant ---------------------------------------------------------------------------------------


async def test_login_returns_tokens_for_the_imported_user(
    session: aiohttp.ClientSession, bcrypt_hash: str
) -> None:
    async with SandboxServer(SandboxSettings(token_lifetime=600, **FAST)) as server:
        token = await get_token(session, server)
        user = {
            "email": EMAIL,
            "email_verified": True,
            "user_id": "ada",
            "password_hash": bcrypt_hash,
        }
        await run_job(session, server, token, [user])
        status, body = await login(session, server, "Ada@Example.com", PASSWORD)
        assert status == 200, body
        assert list(body) == ["access_token", "id_token", "scope", "expires_in", "token_type"]
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 600)
        assert body["scope"] == "openid profile email"
        # The ID token is signed with the client secret, as Auth0 signs an HS256 application's.
        identity = claims_of(body["id_token"], server.settings.client_secret.encode())
        assert identity["sub"] == "auth0|ada"
        assert identity["email"] == EMAIL
        assert identity["email_verified"] is True
        assert identity["aud"] == server.settings.client_id
        assert identity["iss"] == f"{server.base_url}/"
        access = claims_of(body["access_token"])
        assert (access["sub"], access["gty"]) == ("auth0|ada", "password")
        # A user's token is no Management API token.
        status, refused = await get_json(session, server, body["access_token"], "/api/v2/jobs/x")
        assert status == 401
        assert isinstance(refused, dict)
        assert refused["message"] == "Invalid token"
        assert server.state.logins == {"ok": 1, "failed": 0}


async def test_login_by_json_body_with_scope_and_audience(
    session: aiohttp.ClientSession, bcrypt_hash: str
) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL, "password_hash": bcrypt_hash}])
        audience = f"https://{server.settings.domain}/api/v2/"
        payload = {
            "grant_type": PASSWORD_REALM,
            "client_id": server.settings.client_id,
            "client_secret": server.settings.client_secret,
            "username": EMAIL,
            "password": PASSWORD,
            "realm": "Username-Password-Authentication",
            "scope": "profile read:users",
            "audience": audience,
        }
        async with session.post(f"{server.base_url}/oauth/token", json=payload) as response:
            assert response.status == 200
            body = await response.json()
        # Without `openid` there is no ID token; only OIDC scopes are granted to a user.
        assert "id_token" not in body
        assert body["scope"] == "profile"
        assert claims_of(body["access_token"])["aud"] == [audience, f"{server.base_url}/userinfo"]
        status, other = await login(session, server, EMAIL, PASSWORD, audience="https://x/api/")
        assert (status, other["error"]) == (403, "access_denied")


@pytest.mark.parametrize(
    ("change", "status", "body"),
    [
        (
            {"password": "wrong"},
            403,
            {"error": "invalid_grant", "error_description": "Wrong email or password."},
        ),
        (
            {"username": "nobody@example.com"},
            403,
            {"error": "invalid_grant", "error_description": "Wrong email or password."},
        ),
        (
            {"realm": "No-Such-Connection"},
            400,
            {"error": "invalid_request", "error_description": "the connection was not found"},
        ),
        (
            {"realm": "Disabled-Database"},
            400,
            {"error": "invalid_request", "error_description": "the connection was disabled"},
        ),
        (
            {"realm": "google-oauth2"},
            400,
            {
                "error": "invalid_request",
                "error_description": "specified strategy does not support requested operation",
            },
        ),
        (
            {"client_secret": "not-the-secret"},
            401,
            {"error": "invalid_client", "error_description": "Client authentication failed"},
        ),
        (
            {"password": ""},
            400,
            {
                "error": "invalid_request",
                "error_description": "Missing required parameter: password",
            },
        ),
    ],
)
async def test_login_refusals(
    session: aiohttp.ClientSession,
    bcrypt_hash: str,
    change: dict[str, str],
    status: int,
    body: dict[str, str],
) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL, "password_hash": bcrypt_hash}])
        password = change.pop("password", PASSWORD)
        username = change.pop("username", EMAIL)
        got_status, got = await login(session, server, username, password, **change)
        assert (got_status, got) == (status, body)
        assert server.state.logins == {"ok": 0, "failed": 1}


async def test_grant_not_allowed_for_the_client(
    session: aiohttp.ClientSession, bcrypt_hash: str
) -> None:
    async with SandboxServer(SandboxSettings(password_grant=False, **FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL, "password_hash": bcrypt_hash}])
        status, body = await login(session, server, EMAIL, PASSWORD)
        assert status == 403
        assert body == {
            "error": "unauthorized_client",
            "error_description": (
                "Grant type 'http://auth0.com/oauth/grant-type/password-realm' "
                "not allowed for the client."
            ),
        }
        assert server.state.login_failures["unauthorized_client"] == 1


async def test_blocked_user(session: aiohttp.ClientSession, bcrypt_hash: str) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        user = {"email": EMAIL, "blocked": True, "password_hash": bcrypt_hash}
        await run_job(session, server, token, [user])
        assert await login(session, server, EMAIL, PASSWORD) == (
            401,
            {"error": "unauthorized", "error_description": "user is blocked"},
        )
        # A wrong password says nothing about the block.
        status, body = await login(session, server, EMAIL, "wrong")
        assert (status, body["error"]) == (403, "invalid_grant")
        assert server.state.logins == {"ok": 0, "failed": 2}
        assert server.state.login_failures["blocked"] == 1


async def test_user_imported_without_a_hash_cannot_log_in(session: aiohttp.ClientSession) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL}])
        assert (await login(session, server, EMAIL, ""))[0] == 400
        assert (await login(session, server, EMAIL, "anything"))[0] == 403


async def test_every_hash_kind_logs_in_over_http(session: aiohttp.ClientSession) -> None:
    argon2 = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    salted_md5 = hashlib.md5(b"NaCl" + PASSWORD.encode()).hexdigest()
    ssha = hashlib.sha1(PASSWORD.encode() + b"salt").digest() + b"salt"
    scrypt = hashlib.scrypt(PASSWORD.encode(), salt=b"NaCl", n=1024, r=8, p=1, dklen=32)
    mac = hmac.new(b"key", PASSWORD.encode(), "sha512").digest()
    custom_bcrypt = bcrypt.hashpw(PASSWORD.encode() + b"pepper", bcrypt.gensalt(4)).decode()
    hashes: dict[str, dict[str, Any]] = {
        "argon2": {"algorithm": "argon2", "hash": {"value": argon2}},
        "pbkdf2": {"algorithm": "pbkdf2", "hash": {"value": pbkdf2_phc(PASSWORD)}},
        "md5": {
            "algorithm": "md5",
            "hash": {"value": salted_md5, "encoding": "hex"},
            "salt": {"value": "NaCl"},
        },
        "ldap": {
            "algorithm": "ldap",
            "hash": {"value": "{SSHA}" + base64.b64encode(ssha).decode()},
        },
        "scrypt": {
            "algorithm": "scrypt",
            "hash": {"value": scrypt.hex(), "encoding": "hex"},
            "salt": {"value": "NaCl"},
            "keylen": 32,
            "cost": 1024,
        },
        "hmac": {
            "algorithm": "hmac",
            "hash": {
                "value": base64.b64encode(mac).decode(),
                "encoding": "base64",
                "digest": "sha512",
                "key": {"value": "key"},
            },
        },
        "bcrypt": {
            "algorithm": "bcrypt",
            "hash": {"value": custom_bcrypt},
            "salt": {"value": "pepper", "position": "suffix"},
        },
        # A conversion gone wrong: padded base64 in the PHC string. The import accepts it...
        "padded-pbkdf2": {
            "algorithm": "pbkdf2",
            "hash": {"value": pbkdf2_phc(PASSWORD, padded=True)},
        },
    }
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        users = [
            {"email": f"{kind}@example.com", "custom_password_hash": stored}
            for kind, stored in hashes.items()
        ]
        body = await run_job(session, server, token, users)
        assert body["summary"]["inserted"] == len(hashes)
        for kind in hashes:
            status, answer = await login(session, server, f"{kind}@example.com", PASSWORD)
            # ...and only a login shows that the user cannot sign in.
            expected = 403 if kind == "padded-pbkdf2" else 200
            assert status == expected, (kind, answer)
            assert (await login(session, server, f"{kind}@example.com", "nope"))[0] == 403
        assert server.state.logins == {"ok": len(hashes) - 1, "failed": len(hashes) + 1}


async def test_missing_package_answers_500_naming_it(
    session: aiohttp.ClientSession, bcrypt_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL, "password_hash": bcrypt_hash}])
        monkeypatch.setitem(sys.modules, "bcrypt", None)
        status, body = await login(session, server, EMAIL, PASSWORD)
        assert status == 500
        assert body["error"] == "server_error"
        assert "'bcrypt' package is not installed" in body["error_description"]
        assert server.state.login_failures["cannot_verify"] == 1
        assert server.state.logins["ok"] == 0


async def test_passwords_and_hashes_are_never_shown(
    session: aiohttp.ClientSession, bcrypt_hash: str
) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL, "password_hash": bcrypt_hash}])
        for password in (PASSWORD, "a-wrong-Passw0rd"):
            _, body = await login(session, server, EMAIL, password)
            assert password not in json.dumps(body)
        _, found = await get_json(session, server, token, f"/api/v2/users-by-email?email={EMAIL}")
        async with session.get(f"{server.base_url}/sandbox/state") as response:
            state = await response.text()
        for text in (json.dumps(found), state):
            for secret in (PASSWORD, "a-wrong-Passw0rd", bcrypt_hash):
                assert secret not in text
        assert orjson.loads(state)["logins"] == {
            "ok": 1,
            "failed": 1,
            "failed_by_reason": {
                "invalid_client": 0,
                "unauthorized_client": 0,
                "invalid_request": 0,
                "access_denied": 0,
                "unknown_realm": 0,
                "wrong_credentials": 1,
                "blocked": 0,
                "cannot_verify": 0,
            },
        }


# -- password hashes on upsert -------------------------------------------------------------------------


async def upsert_errors(
    session: aiohttp.ClientSession, server: SandboxServer, token: str, users: list[Any]
) -> tuple[dict[str, Any], list[Any]]:
    body = await run_job(session, server, token, users, upsert=True)
    status, errors = await get_json(session, server, token, f"/api/v2/jobs/{body['id']}/errors")
    return body, (errors if status == 200 and isinstance(errors, list) else [])


async def profile(session: aiohttp.ClientSession, server: SandboxServer, token: str) -> Any:
    _, found = await get_json(session, server, token, f"/api/v2/users-by-email?email={EMAIL}")
    assert isinstance(found, list)
    return found[0]


async def test_upsert_cannot_set_a_password_hash(
    session: aiohttp.ClientSession, bcrypt_hash: str
) -> None:
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL, "user_metadata": {"v": 1}}])
        other = bcrypt.hashpw(b"other", bcrypt.gensalt(4)).decode()
        update = {"email": EMAIL, "user_metadata": {"v": 2}, "password_hash": other}
        body, errors = await upsert_errors(session, server, token, [update])
        assert body["summary"] == {"failed": 1, "updated": 0, "inserted": 0, "total": 1}
        assert errors[0]["errors"] == [
            {
                "code": "CONFLICT",
                "message": "A password_hash was provided, but the user already has password hash "
                "defined",
            }
        ]
        assert errors[0]["user"]["password_hash"] == "*****"
        # The whole user failed: its other fields were not applied.
        assert (await profile(session, server, token))["user_metadata"] == {"v": 1}
        assert (await login(session, server, EMAIL, "other"))[0] == 403
        # Also for a user imported with a hash of its own.
        await run_job(
            session, server, token, [{"email": "b@example.com", "password_hash": bcrypt_hash}]
        )
        again = {"email": "b@example.com", "password_hash": other}
        body, _ = await upsert_errors(session, server, token, [again])
        assert body["summary"]["failed"] == 1
        assert (await login(session, server, "b@example.com", PASSWORD))[0] == 200


async def test_upsert_replaces_a_custom_hash_until_it_is_used(
    session: aiohttp.ClientSession,
) -> None:
    def md5_hash(password: str) -> dict[str, Any]:
        digest = hashlib.md5(password.encode()).hexdigest()
        return {"algorithm": "md5", "hash": {"value": digest, "encoding": "hex"}}

    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        first = {"email": EMAIL, "custom_password_hash": md5_hash("first")}
        await run_job(session, server, token, [first])
        # Not used yet: an upsert may replace it (and applies the user's other fields).
        second = {"email": EMAIL, "name": "Ada", "custom_password_hash": md5_hash("second")}
        body, errors = await upsert_errors(session, server, token, [second])
        assert body["summary"] == {"failed": 0, "updated": 1, "inserted": 0, "total": 1}
        assert errors == []
        assert (await login(session, server, EMAIL, "first"))[0] == 403
        assert (await login(session, server, EMAIL, "second"))[0] == 200
        # Once a login used it, it is the user's password: the next replacement fails.
        third = {"email": EMAIL, "name": "Ada L.", "custom_password_hash": md5_hash("third")}
        body, errors = await upsert_errors(session, server, token, [third])
        assert body["summary"] == {"failed": 1, "updated": 0, "inserted": 0, "total": 1}
        assert errors[0]["errors"] == [
            {
                "code": "CONFLICT",
                "message": "A custom_password_hash was provided, but the user already has "
                "password hash defined",
            }
        ]
        assert errors[0]["user"]["custom_password_hash"]["hash"]["value"] == "*****"
        assert (await profile(session, server, token))["name"] == "Ada"
        assert (await login(session, server, EMAIL, "second"))[0] == 200
        assert (await login(session, server, EMAIL, "third"))[0] == 403


async def test_upsert_custom_hash_fails_where_the_first_import_set_none(
    session: aiohttp.ClientSession, bcrypt_hash: str
) -> None:
    custom = {
        "algorithm": "md5",
        "hash": {"value": hashlib.md5(b"pw").hexdigest(), "encoding": "hex"},
    }
    async with SandboxServer(SandboxSettings(**FAST)) as server:
        token = await get_token(session, server)
        users = [{"email": EMAIL}, {"email": "b@example.com", "password_hash": bcrypt_hash}]
        await run_job(session, server, token, users)
        updates = [{"email": user["email"], "custom_password_hash": custom} for user in users]
        body, errors = await upsert_errors(session, server, token, updates)
        assert body["summary"] == {"failed": 2, "updated": 0, "inserted": 0, "total": 2}
        assert [e["errors"][0]["code"] for e in errors] == ["CONFLICT", "CONFLICT"]
        # A new user of the same upsert job is inserted with its hash.
        new = {"email": "c@example.com", "custom_password_hash": custom}
        body, _ = await upsert_errors(session, server, token, [new])
        assert body["summary"]["inserted"] == 1
        assert (await login(session, server, "c@example.com", "pw"))[0] == 200


async def test_keys_only_store_refuses_hash_upserts(session: aiohttp.ClientSession) -> None:
    custom = {
        "algorithm": "md5",
        "hash": {"value": hashlib.md5(b"pw").hexdigest(), "encoding": "hex"},
    }
    async with SandboxServer(SandboxSettings(user_store="keys", **FAST)) as server:
        token = await get_token(session, server)
        await run_job(session, server, token, [{"email": EMAIL, "custom_password_hash": custom}])
        body, _ = await upsert_errors(
            session, server, token, [{"email": EMAIL, "custom_password_hash": custom}]
        )
        assert body["summary"]["failed"] == 1
        # Nothing is kept to sign in with.
        assert (await login(session, server, EMAIL, "pw"))[0] == 403
