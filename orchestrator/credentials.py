"""Where the tool talks to and how it proves who it is: the Auth0 credentials read from the environment.

Owns the rules for AUTH0_DOMAIN / AUTH0_BASE_URL / AUTH0_TOKEN / AUTH0_CLIENT_ID / AUTH0_CLIENT_SECRET
and the plain-HTTP-only-on-loopback check. Obtaining and refreshing tokens is the client's job.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from orchestrator.errors import ConfigError

_CREDENTIALS_HINT = "set AUTH0_TOKEN, or AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET"


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
            raise ConfigError("the Management API audience is empty: set AUTH0_DOMAIN")
        if self.token is None and not (self.client_id and self.client_secret):
            raise ConfigError(f"no Auth0 credentials: {_CREDENTIALS_HINT}")

    @property
    def uses_client_credentials(self) -> bool:
        """True when tokens come from the client-credentials grant (and can be refreshed)."""
        return self.token is None

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        *,
        domain: str | None = None,
        base_url: str | None = None,
    ) -> Credentials:
        """Read the credentials from environment variables; arguments override the variables.

        Args:
            environ: Usually ``os.environ``. Empty values count as unset.
            domain: Overrides AUTH0_DOMAIN (``tenant.eu.auth0.com``).
            base_url: Overrides AUTH0_BASE_URL (``http://127.0.0.1:8080`` for the sandbox).

        Returns:
            The credentials; AUTH0_TOKEN wins over the client id/secret when both are set.

        Raises:
            ConfigError: a variable is missing or malformed; the message names what to set and
                never contains a secret.
        """
        host = _domain(domain or _get(environ, "AUTH0_DOMAIN"))
        base = base_url or _get(environ, "AUTH0_BASE_URL")
        if host is None and base is None:
            raise ConfigError("no Auth0 tenant: set AUTH0_DOMAIN (or AUTH0_BASE_URL for a sandbox)")
        resolved = (base or f"https://{host}").rstrip("/")
        check_base_url(resolved)
        # The audience is the Management API identifier, always the tenant domain (reference §9),
        # even when requests go to another base URL; a sandbox without a domain is its own audience.
        audience = f"https://{host}/api/v2/" if host else f"{resolved}/api/v2/"
        token = _get(environ, "AUTH0_TOKEN")
        if token is not None:
            return cls(base_url=resolved, audience=audience, token=token)
        client_id = _get(environ, "AUTH0_CLIENT_ID")
        client_secret = _get(environ, "AUTH0_CLIENT_SECRET")
        if client_id is None and client_secret is None:
            raise ConfigError(f"no Auth0 credentials: {_CREDENTIALS_HINT}")
        if client_id is None or client_secret is None:
            missing = "AUTH0_CLIENT_ID" if client_id is None else "AUTH0_CLIENT_SECRET"
            raise ConfigError(f"{missing} is not set: {_CREDENTIALS_HINT}")
        return cls(
            base_url=resolved,
            audience=audience,
            client_id=client_id,
            client_secret=client_secret,
        )


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


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _domain(value: str | None) -> str | None:
    """The bare host of AUTH0_DOMAIN; a pasted ``https://tenant/`` is forgiven."""
    if value is None:
        return None
    host = value.strip().rstrip("/")
    if host.lower().startswith("https://"):
        host = host[len("https://") :].rstrip("/")
    if not host or "/" in host or "://" in host or any(c.isspace() for c in host):
        raise ConfigError(
            f"AUTH0_DOMAIN must be a host name like tenant.eu.auth0.com, got {value!r}"
        )
    return host
