"""Where the tool talks to and how it proves who it is: the target tenant and one way to sign in.

Owns the rules for a tenant's domain and base URL (plain HTTP only on loopback) and the choice between
a static token and the client-credentials grant. Obtaining and refreshing tokens is `token.py`'s job;
reading these values from the environment is the CLI's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from orchestrator.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Credentials:
    """The target tenant and one way to authenticate to it.

    Exactly one method is used: a static Management API ``token`` when given, otherwise the
    client-credentials grant with ``client_id`` and ``client_secret``. Secrets stay out of ``repr``.
    """

    base_url: str
    audience: str
    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        if not self.audience:
            raise ConfigError("the Management API audience is empty: give the tenant's domain")
        if self.token is None and not (self.client_id and self.client_secret):
            raise ConfigError(
                "no Auth0 credentials: give a Management API token, or a client id and secret"
            )

    @property
    def uses_client_credentials(self) -> bool:
        """True when tokens come from the client-credentials grant (and can be refreshed)."""
        return self.token is None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values these credentials hold, to scrub from anything shown."""
        return tuple(s for s in (self.token, self.client_secret) if s)

    @classmethod
    def for_tenant(
        cls,
        *,
        domain: str | None,
        base_url: str | None,
        token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> Credentials:
        """The credentials of a tenant known by its domain, its base URL, or both.

        Args:
            domain: the tenant (``tenant.eu.auth0.com``; a pasted ``https://tenant/`` is forgiven).
            base_url: where requests go instead of ``https://{domain}`` (a sandbox, a test).
            token: a static Management API token; it wins over the client id and secret.
            client_id, client_secret: for the client-credentials grant.

        Raises:
            ConfigError: neither domain nor base URL, or one of them malformed.
        """
        host = tenant_host(domain) if domain is not None else None
        if host is None and base_url is None:
            raise ConfigError("no Auth0 tenant: give its domain (or a base URL for a sandbox)")
        resolved = (base_url or f"https://{host}").rstrip("/")
        # The audience is the Management API identifier, always the tenant domain (reference §9),
        # even when requests go to another base URL; a sandbox without a domain is its own audience.
        audience = f"https://{host}/api/v2/" if host else f"{resolved}/api/v2/"
        if token is not None:
            return cls(base_url=resolved, audience=audience, token=token)
        return cls(
            base_url=resolved, audience=audience, client_id=client_id, client_secret=client_secret
        )

    @property
    def tenant(self) -> str:
        """How the run directory records the tenant: the audience names it, the base URL reaches it."""
        return f"{self.audience} via {self.base_url}"


def check_base_url(url: str) -> None:
    """Refuse a base URL that is not https, unless it is plain http to a loopback host.

    Raises:
        ConfigError: malformed URL, credentials or query in it, or http to a non-loopback host.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ConfigError(f"the Auth0 base URL is malformed: {exc}") from exc
    if parts.username is not None or parts.password is not None:
        # Do not echo the URL: the user part may hold a secret.
        raise ConfigError("the Auth0 base URL must not contain a user name or password")
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"the Auth0 base URL must look like https://HOST, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"the Auth0 base URL must not have a query or fragment: {url!r}")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"refusing plain http to {host}: tokens would travel unencrypted; "
            "use https (http is accepted only for 127.0.0.1, ::1 and localhost)"
        )


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tenant_host(value: str) -> str:
    """The bare host of a tenant domain; a pasted ``https://tenant/`` is forgiven.

    Raises:
        ConfigError: the value is not a host name.
    """
    host = value.strip().rstrip("/")
    if host.lower().startswith("https://"):
        host = host[len("https://") :].rstrip("/")
    if not host or "/" in host or "://" in host or any(c.isspace() for c in host):
        raise ConfigError(
            f"the tenant domain must be a host name like tenant.eu.auth0.com, got {value!r}"
        )
    return host


@dataclass(frozen=True, slots=True)
class LoginClient:
    """The application test accounts sign in through (it must allow the password grant)."""

    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # the secret never reaches a log through a repr
        return f"LoginClient(client_id={self.client_id!r})"
