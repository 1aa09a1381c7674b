"""Passwords that still work after the move, proven by signing in: each source's hashes, made by the
real algorithm from known passwords, go through the real CLI into the sandbox (which really checks
them), then `verify --logins` signs the test accounts in.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bcrypt
import orjson
import pytest
from argon2 import PasswordHasher

from orchestrator.sandbox import DATABASE_CONNECTION_NAME, SandboxThread
from tests.run_helpers import client_env, run_args, run_cli, sandbox

PASSWORDS = {
    "ada@example.com": "Tr0ub4dor&3",
    "bob@example.com": "correct horse battery staple",
    "cleo@example.com": "naïve café ☕ 1",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_ndjson(path: Path, rows: Sequence[object]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def write_logins(path: Path, accounts: dict[str, str]) -> Path:
    lines = ["email,password", *(f'{email},"{password}"' for email, password in accounts.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(server: SandboxThread, source: Path, run_dir: Path, *extra: str) -> Any:
    return run_cli(run_args(source, run_dir, *extra), client_env(server))


def logins(server: SandboxThread, run_dir: Path, accounts: Path, *extra: str) -> Any:
    args: list[str | Path] = ["verify", "--run-dir", run_dir, "--logins", accounts]
    args += ["--log-format", "json", *extra]
    return run_cli(args, client_env(server))


def summary_of(process: Any) -> dict[str, Any]:
    for line in reversed(process.stdout.splitlines()):
        event = json.loads(line)
        if event.get("event") == "summary":
            return dict(event)
    raise AssertionError(process.stdout + process.stderr)


# -- Auth0 -> Auth0 with support's hash file ---------------------------------------------------------


def test_an_auth0_move_with_the_support_hash_file_signs_in(tmp_path: Path) -> None:
    oids = {email: f"5dea{i:020x}" for i, email in enumerate(PASSWORDS)}
    users: list[dict[str, Any]] = [
        {
            "user_id": f"auth0|{oids[email]}",
            "email": email,
            "email_verified": True,
            "identities": [{"provider": "auth0", "connection": DATABASE_CONNECTION_NAME}],
            "logins_count": 3,
        }
        for email in PASSWORDS
    ]
    users.append({"user_id": "google-oauth2|1099", "email": "gus@example.com"})
    rows = []
    for email, password in PASSWORDS.items():
        cost = 10 if email != "cleo@example.com" else 4  # cost 4: a custom bcrypt hash
        rows.append(
            {
                "_id": {"$oid": oids[email]},
                "passwordHash": bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode(),
                "connection": DATABASE_CONNECTION_NAME,
                # Bob's row names him only by email, in identifiers (as support's rows may).
                **({"identifiers": [{"type": "email", "value": email}]} if "bob" in email else {}),
            }
        )
    rows[1]["_id"] = {"$oid": "not-in-the-export"}
    export = write_ndjson(tmp_path / "users.ndjson", users)
    hashes = write_ndjson(tmp_path / "hashes.ndjson", rows)
    with sandbox() as server:
        done = run(
            server, export, tmp_path / "run", "--from", "auth0-export", "--password-hashes",
            str(hashes),
        )  # fmt: skip
        assert done.returncode == 1, done.stderr  # the Google user is rejected locally
        plan = next(
            json.loads(line)
            for line in done.stdout.splitlines()
            if json.loads(line).get("event") == "plan"
        )
        assert plan["credentials"] == {"bcrypt": 3}
        assert plan["rejected_by_reason"] == {"not_database_user": 1}
        accounts = write_logins(tmp_path / "logins.csv", PASSWORDS)
        signed = logins(server, tmp_path / "run", accounts)
        assert signed.returncode == 0, signed.stdout + signed.stderr
        assert summary_of(signed)["ok"] == 3
        assert "Tr0ub4dor" not in signed.stdout + signed.stderr
        written = (tmp_path / "run" / "logins.json").read_text()
        assert "Tr0ub4dor" not in written
        assert "ada@example.com" in written


def test_an_auth0_export_without_its_hashes_stops_before_sending_anything(tmp_path: Path) -> None:
    users = [
        {"user_id": f"auth0|{i:024x}", "email": f"u{i}@example.com", "logins_count": 1}
        for i in range(3)
    ]
    export = write_ndjson(tmp_path / "users.ndjson", users)
    with sandbox() as server:
        stopped = run(server, export, tmp_path / "run", "--from", "auth0-export")
        assert stopped.returncode == 2
        line = stopped.stderr.strip()
        assert "\n" not in line
        assert "3 of 3 users" in line
        assert "--password-hashes" in line
        assert "--allow-missing-passwords" in line
        assert server.state.jobs() == []
        allowed = run(
            server, export, tmp_path / "run", "--from", "auth0-export", "--allow-missing-passwords"
        )
        assert allowed.returncode == 0, allowed.stderr
        assert server.state.user_count == 3


# -- Django -------------------------------------------------------------------------------------------


def django_pbkdf2(password: str, salt: str = "s4ltS4ltS4lt", iterations: int = 1000) -> str:
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${b64(key)}"


def django_record(pk: int, email: str, password: str, **fields: Any) -> dict[str, Any]:
    return {
        "model": "auth.user",
        "pk": pk,
        "fields": {
            "password": password,
            "username": email.split("@")[0],
            "email": email,
            "first_name": email.split("@")[0].title(),
            "last_name": "Lovelace",
            "is_active": True,
            "is_staff": False,
            "is_superuser": False,
            "groups": [],
            "user_permissions": [],
            "date_joined": "2020-01-01T00:00:00Z",
            "last_login": None,
            **fields,
        },
    }


def test_a_django_dump_signs_in_with_pbkdf2_argon2_and_bcrypt(tmp_path: Path) -> None:
    ada, bob, cleo = PASSWORDS.values()
    argon = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(bob)
    records = [
        django_record(1, "ada@example.com", django_pbkdf2(ada)),
        django_record(2, "bob@example.com", "argon2" + argon),
        django_record(3, "cleo@example.com", "bcrypt$" + bcrypt.hashpw(cleo.encode(), bcrypt.gensalt(4)).decode()),
        django_record(4, "dan@example.com", "!unusableUnusableUnusable"),
        django_record(5, "eve@example.com", django_pbkdf2("eve's secret"), is_active=False),
        {"model": "auth.group", "pk": 1, "fields": {"name": "staff", "permissions": []}},
    ]  # fmt: skip
    dump = tmp_path / "users.json"
    dump.write_bytes(orjson.dumps(records, option=orjson.OPT_INDENT_2))
    with sandbox() as server:
        refused = run(server, dump, tmp_path / "run", "--from", "django")
        assert refused.returncode == 2
        assert "1 of 5 users" in refused.stderr
        done = run(server, dump, tmp_path / "run", "--from", "django", "--allow-missing-passwords")
        assert done.returncode == 0, done.stderr
        accounts = {**PASSWORDS, "dan@example.com": "anything", "eve@example.com": "eve's secret"}
        signed = logins(server, tmp_path / "run", write_logins(tmp_path / "l.csv", accounts))
        assert signed.returncode == 1
        verdicts = {
            check["username"]: check["outcome"]
            for check in orjson.loads((tmp_path / "run" / "logins.json").read_bytes())["checks"]
        }
        assert verdicts == {
            "ada@example.com": "ok",
            "bob@example.com": "ok",
            "cleo@example.com": "ok",
            "dan@example.com": "wrong_password",  # no password came: the user resets
            "eve@example.com": "blocked",  # is_active false, and the password is right
        }


# -- Keycloak ----------------------------------------------------------------------------------------


def keycloak_credential(password: str, algorithm: str, iterations: int = 27_500) -> dict[str, Any]:
    digest = {"pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512", "pbkdf2": "sha1"}[algorithm]
    salt = hashlib.sha256(password.encode()).digest()[:16]
    key = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations, 64)
    return {
        "type": "password",
        "createdDate": 1_700_000_000_000,
        "secretData": json.dumps(
            {"value": b64(key), "salt": b64(salt), "additionalParameters": {}}
        ),
        "credentialData": json.dumps(
            {"hashIterations": iterations, "algorithm": algorithm, "additionalParameters": {}}
        ),
    }


@pytest.mark.parametrize("pretty", [True, False])
def test_a_keycloak_realm_signs_in_with_its_pbkdf2_credentials(
    tmp_path: Path, pretty: bool
) -> None:
    algorithms = ("pbkdf2-sha256", "pbkdf2-sha512", "pbkdf2")
    users = [
        {
            "id": f"kc-{i}",
            "username": email.split("@")[0],
            "email": email,
            "emailVerified": True,
            "enabled": True,
            "firstName": "Test",
            "credentials": [keycloak_credential(password, algorithms[i])],
        }
        for i, (email, password) in enumerate(PASSWORDS.items())
    ]
    users.append({"id": "svc", "username": "service-account-api", "serviceAccountClientId": "api"})
    realm = {
        "realm": "acme",
        "enabled": True,
        "roles": {"realm": []},
        "users": users,
        "clients": [],
    }
    path = tmp_path / "realm.json"
    path.write_bytes(orjson.dumps(realm, option=orjson.OPT_INDENT_2 if pretty else 0))
    with sandbox() as server:
        done = run(server, path, tmp_path / "run", "--from", "keycloak")
        assert done.returncode == 0, done.stderr
        signed = logins(
            server, tmp_path / "run", write_logins(tmp_path / "l.csv", PASSWORDS), "--realm",
            DATABASE_CONNECTION_NAME,
        )  # fmt: skip
        assert signed.returncode == 0, signed.stdout + signed.stderr
        assert summary_of(signed)["ok"] == 3


# -- the grant refused ---------------------------------------------------------------------------------


def test_an_application_without_the_password_grant_is_told_what_to_enable(tmp_path: Path) -> None:
    users = [
        {
            "email": "ada@example.com",
            "password_hash": bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode(),
        }
    ]
    export = write_ndjson(tmp_path / "users.ndjson", users)
    with sandbox(password_grant=False) as server:
        assert run(server, export, tmp_path / "run").returncode == 0
        refused = logins(
            server, tmp_path / "run", write_logins(tmp_path / "l.csv", {"ada@example.com": "x"})
        )
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1
        assert "Password in its Advanced Settings > Grant Types" in refused.stderr


def test_upsert_with_hashes_warns_and_existing_users_keep_their_password(tmp_path: Path) -> None:
    first = bcrypt.hashpw(b"first", bcrypt.gensalt(4)).decode()
    second = bcrypt.hashpw(b"second", bcrypt.gensalt(4)).decode()
    with sandbox() as server:
        initial = write_ndjson(
            tmp_path / "a.ndjson", [{"email": "ada@example.com", "password_hash": first}]
        )
        assert run(server, initial, tmp_path / "a").returncode == 0
        again = write_ndjson(
            tmp_path / "b.ndjson",
            [{"email": "ada@example.com", "password_hash": second, "name": "Ada"}],
        )
        done = run(server, again, tmp_path / "b", "--upsert")
        events = [json.loads(line) for line in done.stdout.splitlines()]
        warnings = [e["message"] for e in events if e["event"] == "warning"]
        assert len(warnings) == 1
        assert "first import only" in warnings[0]
        assert done.returncode == 1  # the service refuses the hash for the user who has one
        signed = logins(
            server, tmp_path / "a", write_logins(tmp_path / "l.csv", {"ada@example.com": "first"})
        )
        assert signed.returncode == 0, signed.stdout
