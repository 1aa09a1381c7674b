"""Proof by login: test accounts whose passwords are known sign in through the password-realm grant.

A wrongly converted hash is not an import error: the import succeeds and the user can never sign in.
Only a sign-in proves a conversion, so `verify --logins FILE` signs each listed account in (`POST
/oauth/token`, grant `password-realm`, realm = the connection's name) and reports per account:
`ok`, `wrong_password` (Auth0 does not say whether the user exists), `blocked`, or `error`.
Passwords are read from the file and sent to the tenant, never logged or written anywhere.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import orjson

from orchestrator.auth0.client import ApiClient
from orchestrator.auth0.credentials import Credentials, LoginClient
from orchestrator.errors import ApiError, AuthError, ConfigError, InputError
from orchestrator.events import EventSink, discard
from orchestrator.fsutil import PRIVATE_FILE_MODE, utc_now_iso
from orchestrator.outcomes import Outcome
from orchestrator.settings import ClientSettings

LoginVerdict = Literal["ok", "wrong_password", "blocked", "error"]
#: Where the outcome of the last login check is written in the run directory.
LOGINS_FILE: Final = "logins.json"
#: A login file larger than this is not a list of test accounts.
_MAX_ACCOUNTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Account:
    """A test account of the login file: who signs in, and with what (never shown)."""

    line: int
    username: str
    password: str

    def __repr__(self) -> str:  # a password must not reach a log through a repr
        return f"Account(line={self.line}, username={self.username!r})"


@dataclass(frozen=True, slots=True)
class LoginCheck:
    """One account's sign-in: its verdict, and for an error what the service said."""

    line: int
    username: str
    verdict: LoginVerdict
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        item: dict[str, object] = {
            "line": self.line,
            "username": self.username,
            "outcome": self.verdict,
        }
        if self.detail:
            item["detail"] = self.detail
        return item


@dataclass(frozen=True, slots=True)
class LoginsResult:
    """Every account's sign-in, as written to DIR/logins.json."""

    realm: str
    checked_at: str
    checks: list[LoginCheck]

    def count(self, verdict: LoginVerdict) -> int:
        return sum(1 for check in self.checks if check.verdict == verdict)

    @property
    def outcome(self) -> Outcome:
        """OK every account signed in; USERS_FAILED some could not; UNFINISHED errors only."""
        if self.count("wrong_password") or self.count("blocked"):
            return Outcome.USERS_FAILED
        if self.count("error"):
            return Outcome.UNFINISHED
        return Outcome.OK

    def summary(self) -> dict[str, object]:
        return {
            "realm": self.realm,
            "accounts": len(self.checks),
            "ok": self.count("ok"),
            "wrong_password": self.count("wrong_password"),
            "blocked": self.count("blocked"),
            "error": self.count("error"),
        }

    def to_json(self) -> bytes:
        document = {
            **self.summary(),
            "checked_at": self.checked_at,
            "checks": [check.as_json() for check in self.checks],
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def read_accounts(path: Path) -> list[Account]:
    """The accounts of a login file: CSV with an `email` (or `username`) and a `password` column,
    or NDJSON of `{"email": ..., "password": ...}`.

    Raises:
        InputError: the file cannot be read or an account is incomplete (naming its line).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the login file ({exc})", path=str(path)) from None
    rows = _json_rows(text, path) if text.lstrip().startswith("{") else _csv_rows(text, path)
    if len(rows) > _MAX_ACCOUNTS:
        raise InputError(
            f"{len(rows):,} accounts: a login check is for a few test accounts (at most "
            f"{_MAX_ACCOUNTS:,})",
            path=str(path),
        )
    accounts: list[Account] = []
    for line, row in rows:
        username = row.get("email") or row.get("username")
        password = row.get("password")
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise InputError(
                "every account needs an email (or username) and a password",
                path=str(path),
                where=f"line {line}",
            )
        accounts.append(Account(line, username, password))
    if not accounts:
        raise InputError("the login file lists no accounts", path=str(path))
    return accounts


def _json_rows(text: str, path: Path) -> list[tuple[int, dict[str, object]]]:
    rows: list[tuple[int, dict[str, object]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise InputError("not a JSON object", path=str(path), where=f"line {number}")
        rows.append((number, value))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, object]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    if "password" not in fields or not {"email", "username"} & set(fields):
        raise InputError(
            "a CSV login file needs a header with email (or username) and password",
            path=str(path),
            where="line 1",
        )
    reader.fieldnames = fields
    return [(reader.line_num, dict(row)) for row in reader]


async def sign_in_all(
    accounts: list[Account],
    realm: str,
    login_client: LoginClient,
    credentials: Credentials,
    settings: ClientSettings,
    *,
    events: EventSink = discard,
) -> LoginsResult:
    """Sign every account in, one after the other, within the request budget.

    Raises:
        ConfigError: the application may not use the password grant, its credentials are
            refused, or the realm is not a database connection (one line, what to do).
    """
    checks: list[LoginCheck] = []
    async with ApiClient(credentials, settings, events=events) as client:
        for account in accounts:
            checks.append(await _sign_in(client, login_client, account, realm))
            events("login", checks[-1].as_json())
    return LoginsResult(realm, utc_now_iso(), checks)


async def _sign_in(
    client: ApiClient, login_client: LoginClient, account: Account, realm: str
) -> LoginCheck:
    def check(verdict: LoginVerdict, detail: str = "") -> LoginCheck:
        return LoginCheck(account.line, account.username, verdict, detail)

    try:
        await client.sign_in(
            realm,
            account.username,
            account.password,
            client_id=login_client.client_id,
            client_secret=login_client.client_secret,
        )
    except AuthError as exc:
        error, description = _oauth_error(exc.body)
        if error in ("invalid_grant",):
            return check("wrong_password")
        if error == "mfa_required":
            return check("ok", "the password is right; the account also asks for MFA")
        if error == "unauthorized" and "blocked" in description.lower():
            return check("blocked")
        raise ConfigError(_refusal(error, description, realm)) from None
    except ApiError as exc:
        return check("error", str(exc))
    return check("ok")


def _oauth_error(body: object) -> tuple[str, str]:
    if not isinstance(body, dict):
        return "", ""
    error, description = body.get("error"), body.get("error_description")
    return (
        error if isinstance(error, str) else "",
        description if isinstance(description, str) else "",
    )


def _refusal(error: str, description: str, realm: str) -> str:
    """Why no account can be signed in at all, and what to do."""
    if error == "unauthorized_client":
        return (
            "the application may not use the password grant: enable Password in its Advanced "
            "Settings > Grant Types (AUTH0_LOGIN_CLIENT_ID names another application), then "
            "run verify --logins again"
        )
    if error == "invalid_client":
        return (
            "the application's credentials were refused for a sign-in: check "
            "AUTH0_LOGIN_CLIENT_ID and AUTH0_LOGIN_CLIENT_SECRET (or AUTH0_CLIENT_ID/SECRET)"
        )
    return (
        f"the tenant refused the sign-in to realm {realm!r} ({error or 'error'}: {description}); "
        "--realm names the database connection the users were imported into"
    )


def write_logins(run_dir: Path, result: LoginsResult) -> Path:
    """Write DIR/logins.json (0600): usernames and outcomes, never passwords."""
    path = run_dir / LOGINS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(result.to_json())
    return path
