"""`--connection NAME`: the dashboard's name resolved to the connection's id through the API, or one
clear line (exit 2) and nothing sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.app.connections import connection_id_named
from orchestrator.app.target import Target
from orchestrator.auth0.credentials import Credentials
from orchestrator.errors import ConfigError
from orchestrator.sandbox import (
    DATABASE_CONNECTION_ID,
    DATABASE_CONNECTION_NAME,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SandboxThread,
)
from orchestrator.settings import ClientSettings
from tests.run_helpers import FAST, client_env, run_cli, sandbox, write_users


def target_of(server: SandboxThread) -> Target:
    credentials = Credentials.for_tenant(
        domain=None,
        base_url=server.base_url,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
    )
    return Target(credentials, ClientSettings(max_rps=100.0))


def test_a_database_connection_is_found_by_its_name() -> None:
    with sandbox() as server:
        assert connection_id_named(DATABASE_CONNECTION_NAME, target_of(server)) == (
            DATABASE_CONNECTION_ID
        )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("username-password-authentication", "no connection with that name (names are exact"),
        ("google-oauth2", "a google-oauth2 connection, not a database connection"),
    ],
)
def test_a_name_that_is_not_a_database_connection_is_refused(name: str, message: str) -> None:
    with sandbox() as server, pytest.raises(ConfigError, match=f"^--connection {name}: ") as caught:
        connection_id_named(name, target_of(server))
    assert message in str(caught.value)


def test_a_token_that_cannot_read_connections_is_told_the_scope() -> None:
    with (
        sandbox(FAST, scopes=("create:users", "read:users")) as server,
        pytest.raises(ConfigError, match="read:connections") as caught,
    ):
        connection_id_named(DATABASE_CONNECTION_NAME, target_of(server))
    assert "--connection-id" in str(caught.value)


def test_run_by_connection_name_imports_and_an_unknown_name_exits_2_sending_nothing(
    tmp_path: Path,
) -> None:
    users = tmp_path / "users.json"
    write_users(users, 5)
    with sandbox() as server:
        env = client_env(server)
        bad = run_cli(
            ["run", users, "--run-dir", tmp_path / "bad", "--connection", "No-Such-Db"], env
        )
        assert bad.returncode == 2
        assert bad.stderr.strip().count("\n") == 0
        assert "No-Such-Db" in bad.stderr
        assert server.state.jobs() == []
        assert not (tmp_path / "bad").exists()
        good = run_cli(
            ["run", users, "--run-dir", tmp_path / "run", "--connection", DATABASE_CONNECTION_NAME],
            env,
        )
        assert good.returncode == 0, good.stderr
        assert server.state.user_count == 5
