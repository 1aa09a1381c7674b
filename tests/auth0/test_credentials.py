"""Credentials from the environment: precedence, missing pieces, the loopback-only http rule, no leaks."""

from __future__ import annotations

import argparse

import pytest

from orchestrator.auth0.credentials import Credentials, check_base_url, is_loopback
from orchestrator.cli.options import credentials
from orchestrator.errors import ConfigError


def from_environment(
    environ: dict[str, str], *, domain: str | None = None, base_url: str | None = None
) -> Credentials:
    """What the command line builds from the environment (flags `--domain`, `--base-url`)."""
    return credentials(argparse.Namespace(domain=domain, base_url=base_url), environ)


SECRET = "s3cr3t-value-never-shown"
TOKEN = "eyJ.token-never-shown.sig"


def test_domain_and_client_credentials() -> None:
    creds = from_environment(
        {
            "AUTH0_DOMAIN": "tenant.eu.auth0.com",
            "AUTH0_CLIENT_ID": "cid",
            "AUTH0_CLIENT_SECRET": SECRET,
        }
    )
    assert creds.base_url == "https://tenant.eu.auth0.com"
    assert creds.audience == "https://tenant.eu.auth0.com/api/v2/"
    assert creds.client_id == "cid"
    assert creds.client_secret == SECRET
    assert creds.token is None
    assert creds.uses_client_credentials
    assert SECRET not in repr(creds)


def test_static_token_wins_over_client_credentials() -> None:
    creds = from_environment(
        {
            "AUTH0_DOMAIN": "tenant.auth0.com",
            "AUTH0_TOKEN": TOKEN,
            "AUTH0_CLIENT_ID": "cid",
            "AUTH0_CLIENT_SECRET": SECRET,
        }
    )
    assert creds.token == TOKEN
    assert creds.client_secret is None
    assert not creds.uses_client_credentials
    assert TOKEN not in repr(creds)


def test_base_url_overrides_domain_but_not_audience() -> None:
    creds = from_environment(
        {
            "AUTH0_DOMAIN": "tenant.auth0.com",
            "AUTH0_BASE_URL": "http://127.0.0.1:8080/",
            "AUTH0_TOKEN": TOKEN,
        }
    )
    assert creds.base_url == "http://127.0.0.1:8080"
    assert creds.audience == "https://tenant.auth0.com/api/v2/"


def test_sandbox_without_domain_is_its_own_audience() -> None:
    creds = from_environment({"AUTH0_BASE_URL": "http://localhost:9000//", "AUTH0_TOKEN": TOKEN})
    assert creds.base_url == "http://localhost:9000"
    assert creds.audience == "http://localhost:9000/api/v2/"


def test_arguments_override_environment() -> None:
    creds = from_environment(
        {"AUTH0_DOMAIN": "env.auth0.com", "AUTH0_TOKEN": TOKEN},
        domain="arg.auth0.com",
        base_url="http://[::1]:7000",
    )
    assert creds.base_url == "http://[::1]:7000"
    assert creds.audience == "https://arg.auth0.com/api/v2/"


def test_pasted_https_domain_is_forgiven() -> None:
    creds = from_environment({"AUTH0_DOMAIN": "https://tenant.auth0.com/", "AUTH0_TOKEN": TOKEN})
    assert creds.base_url == "https://tenant.auth0.com"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"AUTH0_TOKEN": TOKEN}, "AUTH0_DOMAIN"),
        ({"AUTH0_DOMAIN": "t.auth0.com"}, "AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET"),
        ({"AUTH0_DOMAIN": "t.auth0.com", "AUTH0_TOKEN": "  "}, "AUTH0_TOKEN"),
        ({"AUTH0_DOMAIN": "t.auth0.com", "AUTH0_CLIENT_ID": "cid"}, "AUTH0_CLIENT_SECRET is not"),
        ({"AUTH0_DOMAIN": "t.auth0.com", "AUTH0_CLIENT_SECRET": SECRET}, "AUTH0_CLIENT_ID is not"),
        ({"AUTH0_DOMAIN": "t.auth0.com/api", "AUTH0_TOKEN": TOKEN}, "AUTH0_DOMAIN must"),
        ({"AUTH0_DOMAIN": "ftp://t.auth0.com", "AUTH0_TOKEN": TOKEN}, "AUTH0_DOMAIN must"),
    ],
)
def test_missing_or_malformed_pieces(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        from_environment(environ)
    message = str(info.value)
    assert "\n" not in message
    assert SECRET not in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.1.2.3",
        "http://localhost",
        "http://LOCALHOST:1",
        "http://[::1]:9",
        "https://tenant.auth0.com",
        "https://example.com/prefix",
    ],
)
def test_accepted_base_urls(url: str) -> None:
    check_base_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://tenant.auth0.com", "refusing plain http"),
        ("http://10.0.0.1:8080", "refusing plain http"),
        ("http://128.0.0.1", "refusing plain http"),
        ("http://localhost.evil.com", "refusing plain http"),
        ("ftp://127.0.0.1", "must look like"),
        ("https://", "must look like"),
        ("tenant.auth0.com", "must look like"),
        ("https://h:notaport", "malformed"),
        ("https://t.auth0.com/?x=1", "query or fragment"),
    ],
)
def test_refused_base_urls(url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        check_base_url(url)


def test_userinfo_in_url_is_refused_without_echo() -> None:
    with pytest.raises(ConfigError) as info:
        from_environment(
            {"AUTH0_BASE_URL": f"https://me:{SECRET}@tenant.auth0.com", "AUTH0_TOKEN": TOKEN}
        )
    assert SECRET not in str(info.value)


def test_direct_construction_needs_a_method() -> None:
    with pytest.raises(ConfigError, match="a Management API token, or a client id and secret"):
        Credentials(base_url="https://t.auth0.com", audience="https://t.auth0.com/api/v2/")
    with pytest.raises(ConfigError, match="a Management API token, or a client id and secret"):
        Credentials(
            base_url="https://t.auth0.com", audience="https://t.auth0.com/api/v2/", client_id="x"
        )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("example.com", False),
        ("192.168.1.1", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
