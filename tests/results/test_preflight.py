"""Pre-flight checks against the real sandbox: every failure exits 2 in about a second with one line
saying what to fix, and sends no import job; what cannot be checked is said, and does not stop a run.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from email.utils import formatdate
from pathlib import Path

import orjson
import pytest

from orchestrator.auth0.client import ApiClient
from orchestrator.auth0.credentials import Credentials
from orchestrator.auth0.http import clock_offset
from orchestrator.cli import main
from orchestrator.limits import IMPORTS_PATH
from orchestrator.results.preflight import (
    Check,
    PreflightError,
    PreflightReport,
    judge_clock,
    judge_connection,
    preflight,
)
from orchestrator.sandbox import (
    CUSTOM_DB_CONNECTION_ID,
    DATABASE_CONNECTION_ID,
    DISABLED_CONNECTION_ID,
    SOCIAL_CONNECTION_ID,
    SandboxServer,
    SandboxSettings,
    SandboxThread,
)
from orchestrator.settings import ClientSettings, PreflightSettings
from tests.run_helpers import FAST, client_env, run_args, run_cli, sandbox, write_users

UNKNOWN_CONNECTION_ID = "con_DoesNotExist0000"
WRONG_SECRET = "definitely-not-the-sandbox-secret"
#: A whole CLI process (interpreter start and imports included) must refuse well within this.
CLI_SECONDS = 5.0
#: The pre-flight itself, in process.
PREFLIGHT_SECONDS = 1.0


def import_posts(server: SandboxThread) -> list[object]:
    return [r for r in server.state.requests if r.method == "POST" and r.path == IMPORTS_PATH]


def fake_jwt(claims: dict[str, object]) -> str:
    """A token shaped like a JWT (the sandbox accepts its static token as an opaque string)."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def auth0_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without the developer's own AUTH0_* variables."""
    for name in list(os.environ):
        if name.startswith("AUTH0_"):
            monkeypatch.delenv(name)
    return monkeypatch


def in_process(
    argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, float]:
    for name, value in env.items():
        if name.startswith("AUTH0_"):
            monkeypatch.setenv(name, value)
    started = time.monotonic()
    code = main(argv)
    return code, time.monotonic() - started


# Each case: sandbox changes, environment changes, connection, text the message must contain.
FAILURES = {
    "bad-secret": ({}, {"AUTH0_CLIENT_SECRET": WRONG_SECRET}, DATABASE_CONNECTION_ID,
                   "AUTH0_CLIENT_SECRET"),
    "missing-create-users": ({"scopes": ("read:users", "read:connections")}, {},
                             DATABASE_CONNECTION_ID, "lacks create:users"),
    "unknown-connection": ({}, {}, UNKNOWN_CONNECTION_ID, "does not exist"),
    "disabled-connection": ({}, {}, DISABLED_CONNECTION_ID, "enabled for no application"),
    "social-connection": ({}, {}, SOCIAL_CONNECTION_ID, "not a database connection"),
    "custom-db-without-import-mode": ({}, {}, CUSTOM_DB_CONNECTION_ID, "without import mode"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(FAILURES))
def test_check_command_refuses_each_problem_fast_with_exit_2(tmp_path: Path, case: str) -> None:
    changes, env_changes, connection_id, expected = FAILURES[case]
    with sandbox(FAST, **changes) as server:
        env = {**client_env(server), **env_changes}
        started = time.monotonic()
        done = run_cli(
            ["check", "--connection-id", connection_id, "--log-format", "text"], env, timeout=30
        )
        elapsed = time.monotonic() - started
        assert done.returncode == 2, done.stdout + done.stderr
        assert elapsed < CLI_SECONDS, elapsed
        failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
        assert len(failed) == 1, done.stdout
        assert expected in failed[0]
        assert "Traceback" not in done.stderr
        assert WRONG_SECRET not in done.stdout + done.stderr
        assert not import_posts(server)
        assert not server.state.jobs()


@pytest.mark.parametrize("case", list(FAILURES))
def test_run_stops_before_planning_on_each_problem(
    tmp_path: Path, case: str, auth0_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    changes, env_changes, connection_id, expected = FAILURES[case]
    write_users(tmp_path / "users.json", 50)
    run_dir = tmp_path / "run"
    with sandbox(FAST, **changes) as server:
        args = [str(a) for a in run_args(tmp_path / "users.json", run_dir)]
        args[args.index(DATABASE_CONNECTION_ID)] = connection_id
        env = {**client_env(server), **env_changes}
        code, elapsed = in_process(args, env, auth0_env)
        err = capsys.readouterr().err
        assert code == 2, err
        assert elapsed < PREFLIGHT_SECONDS, elapsed
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert expected in lines[0]
        assert WRONG_SECRET not in err
        assert not run_dir.exists()  # refused before planning: no chunk was even written
        assert not import_posts(server)


def test_every_problem_is_listed_on_its_own_line(
    tmp_path: Path, auth0_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_users(tmp_path / "users.json", 10)
    with sandbox(FAST, scopes=("read:connections",)) as server:
        args = [
            str(a) for a in run_args(tmp_path / "users.json", tmp_path / "run", "--verify", "5")
        ]
        args[args.index(DATABASE_CONNECTION_ID)] = SOCIAL_CONNECTION_ID
        code, _ = in_process(args, client_env(server), auth0_env)
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert "3 problems" in lines[0]
        assert [line.split(":")[0].strip() for line in lines[1:]] == [
            "scopes",
            "scopes",
            "connection",
        ]
        assert "create:users" in lines[1]
        assert "read:users" in lines[2]
        assert not import_posts(server)


def test_without_read_connections_the_connection_is_not_checked_and_the_run_proceeds(
    tmp_path: Path,
) -> None:
    with sandbox(FAST, scopes=("create:users", "read:users")) as server:
        env = client_env(server)
        check = run_cli(
            ["check", "--connection-id", DATABASE_CONNECTION_ID, "--log-format", "text"], env
        )
        assert check.returncode == 0, check.stdout + check.stderr
        line = next(x for x in check.stdout.splitlines() if "connection " in x)
        assert line.startswith("not checked")
        assert "read:connections" in line
        # The check asked nothing it was not allowed to: no 403 in the tenant's logs.
        assert all(r.status != 403 for r in server.state.requests)

        users = write_users(tmp_path / "users.json", 40)
        run_dir = tmp_path / "run"
        done = run_cli(run_args(tmp_path / "users.json", run_dir), env)
        assert done.returncode == 0, done.stderr
        assert server.state.user_count == len(users)
        events = [orjson.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        verdicts = next(e for e in events if e["event"] == "preflight")["checks"]
        verdict = next(c for c in verdicts if c["check"] == "connection")
        assert verdict["status"] == "not_checked"


def test_missing_read_users_is_a_warning_unless_verification_was_asked_for(
    tmp_path: Path, auth0_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with sandbox(FAST, scopes=("create:users", "read:connections")) as server:
        env = client_env(server)
        code, _ = in_process(
            ["check", "--connection-id", DATABASE_CONNECTION_ID, "--log-format", "text"],
            env,
            auth0_env,
        )
        out = capsys.readouterr().out
        assert code == 0
        assert any(x.startswith("WARNING") and "read:users" in x for x in out.splitlines())

        write_users(tmp_path / "users.json", 10)
        args = [
            str(a) for a in run_args(tmp_path / "users.json", tmp_path / "run", "--verify", "5")
        ]
        code, _ = in_process(args, env, auth0_env)
        err = capsys.readouterr().err
        assert code == 2
        assert "read:users" in err
        assert not import_posts(server)


def test_an_opaque_static_token_gets_its_scopes_reported_not_checked(
    auth0_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "sandbox-opaque-management-token"
    with sandbox(FAST, static_token=token) as server:
        code, _ = in_process(
            ["check", "--connection-id", DATABASE_CONNECTION_ID, "--log-format", "json"],
            client_env(server, static_token=token),
            auth0_env,
        )
        summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0
        statuses = {c["check"]: c["status"] for c in summary["checks"]}
        assert statuses == {
            "credentials": "ok",
            "scopes": "not_checked",
            "connection": "ok",
            "service": "ok",
        }
        assert token not in str(summary)


def test_a_refused_static_token_fails_the_credentials_check(
    auth0_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with sandbox(FAST, static_token="the-right-token") as server:
        code, elapsed = in_process(
            ["check", "--connection-id", DATABASE_CONNECTION_ID, "--log-format", "text"],
            client_env(server, static_token="a-wrong-token"),
            auth0_env,
        )
        out = capsys.readouterr().out
        assert code == 2
        assert elapsed < PREFLIGHT_SECONDS
        failed = [x for x in out.splitlines() if x.startswith("FAILED")]
        assert len(failed) == 1
        assert "credentials" in failed[0]
        assert "AUTH0_TOKEN was refused" in failed[0]
        assert "a-wrong-token" not in out


def test_an_expired_static_token_is_refused_and_one_near_expiry_is_a_warning(
    auth0_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scope = "create:users read:users read:connections"
    for exp, expected_code, mark in (
        (time.time() - 120, 2, "FAILED"),
        (time.time() + 600, 0, "WARNING"),
    ):
        token = fake_jwt({"scope": scope, "exp": int(exp)})
        with sandbox(FAST, static_token=token) as server:
            code, _ = in_process(
                ["check", "--connection-id", DATABASE_CONNECTION_ID, "--log-format", "text"],
                client_env(server, static_token=token),
                auth0_env,
            )
            out = capsys.readouterr().out
            assert code == expected_code, out
            line = next(x for x in out.splitlines() if "credentials" in x)
            assert line.startswith(mark)
            assert "AUTH0_TOKEN" in line


def test_an_unreachable_service_fails_in_seconds(
    auth0_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "AUTH0_BASE_URL": f"http://127.0.0.1:{port}",
        "AUTH0_CLIENT_ID": "id",
        "AUTH0_CLIENT_SECRET": "secret-value-never-shown",
    }
    code, elapsed = in_process(
        ["check", "--connection-id", DATABASE_CONNECTION_ID, "--log-format", "text"],
        env,
        auth0_env,
    )
    out = capsys.readouterr().out
    assert code == 2
    assert elapsed < 3.0, elapsed
    line = next(x for x in out.splitlines() if x.startswith("FAILED"))
    assert "service" in line
    assert f"127.0.0.1:{port}" in line
    assert "AUTH0_BASE_URL" in line
    assert "secret-value-never-shown" not in out


async def test_the_client_records_the_service_clock_and_a_clean_preflight_passes() -> None:
    async with SandboxServer(SandboxSettings(job_latency=0, job_seconds=0.05)) as server:
        credentials = Credentials(
            base_url=server.base_url,
            audience=f"https://{server.settings.domain}/api/v2/",
            client_id=server.settings.client_id,
            client_secret=server.settings.client_secret,
        )
        settings = ClientSettings(max_rps=100)
        async with ApiClient(credentials, settings) as client:
            assert client.server_clock_offset is None
            await client.token_info()
            offset = client.server_clock_offset
            assert offset is not None
            assert abs(offset) < 2.0
        report = await preflight(credentials, settings, DATABASE_CONNECTION_ID)
        assert report.ok, report
        assert [c.name for c in report.checks] == ["credentials", "scopes", "connection", "service"]
        assert all(c.status == "ok" for c in report.checks)
        assert report.seconds < PREFLIGHT_SECONDS


def test_clock_offset_reads_http_dates() -> None:
    now = 1_800_000_000.0
    assert clock_offset(formatdate(now + 120, usegmt=True), now) == pytest.approx(120.5)
    assert clock_offset(formatdate(now - 30, usegmt=True), now) == pytest.approx(-29.5)
    assert clock_offset("Thu, 01 Jan 2027 00:00:00 -0000", 1798761600.0) == pytest.approx(0.5)
    assert clock_offset(None, now) is None
    assert clock_offset("not a date", now) is None


@pytest.mark.parametrize(
    ("offset", "status", "words"),
    [
        (None, "not_checked", "Date header"),
        (0.4, "ok", "agree"),
        (-0.4, "ok", "agree"),
        (42.0, "warning", "42 s behind"),
        (-42.0, "warning", "42 s ahead of"),
        (900.0, "failed", "900 s behind"),
        (-900.0, "failed", "NTP"),
    ],
)
def test_clock_verdicts(offset: float | None, status: str, words: str) -> None:
    check = judge_clock(offset, PreflightSettings(), "https://tenant")
    assert check.status == status
    assert words in check.message


def connection(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": DATABASE_CONNECTION_ID,
        "name": "Users",
        "strategy": "auth0",
        "options": {"enabledDatabaseCustomization": False, "import_mode": False},
        "enabled_clients": ["client-1"],
    }
    body.update(changes)
    return body


def test_connection_verdicts() -> None:
    def statuses(body: dict[str, object]) -> list[str]:
        return [c.status for c in judge_connection(DATABASE_CONNECTION_ID, body)]

    assert statuses(connection()) == ["ok"]
    custom_ok = {"enabledDatabaseCustomization": True, "import_mode": True}
    assert statuses(connection(options=custom_ok)) == ["ok"]
    assert (
        "import mode"
        in judge_connection(DATABASE_CONNECTION_ID, connection(options=custom_ok))[0].message
    )
    custom_off = {"enabledDatabaseCustomization": True, "import_mode": False}
    # Both problems are reported, each on its own line.
    assert statuses(connection(options=custom_off, enabled_clients=[])) == ["failed", "failed"]
    # Newer tenants leave enabled_clients out: said, not guessed.
    without = connection()
    del without["enabled_clients"]
    assert statuses(without) == ["ok", "not_checked"]
    assert statuses(connection(strategy="samlp")) == ["failed"]


def test_preflight_error_has_one_line_per_problem() -> None:
    one = PreflightReport(
        (Check("connection", "failed", "fix this"), Check("scopes", "ok", "")), 0.1
    )
    assert str(PreflightError(one)) == "connection: fix this"
    two = PreflightReport(
        (Check("scopes", "failed", "grant a"), Check("connection", "failed", "fix b")), 0.1
    )
    lines = str(PreflightError(two)).splitlines()
    assert lines[1:] == ["  scopes: grant a", "  connection: fix b"]
    assert "2 problems" in lines[0]
