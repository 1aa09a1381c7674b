"""Management API access tokens: issued by the client-credentials grant, checked on every /api/v2 call.

Tokens are HS256 JWTs signed with a per-server key, so a client can read its granted scopes and expiry
from the payload like a real one; validity (expiry, revocation) is decided by the server's own register,
on the sandbox's clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

import orjson

MISSING_TOKEN: Final = "Missing authentication"
INVALID_TOKEN: Final = "Invalid token"
BAD_SIGNATURE: Final = "Invalid signature received for JSON Web Token validation"
EXPIRED_TOKEN: Final = "Expired token received for JSON Web Token validation"


class TokenRejected(Exception):
    """The bearer token is missing, malformed, unknown, revoked or expired; the message says which."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the token endpoint returns."""

    access_token: str
    expires_in: float
    scope: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and verifies tokens; `revoke_all` makes every issued token fail as expired."""

    def __init__(
        self, *, lifetime: float, static_token: str | None, scopes: tuple[str, ...]
    ) -> None:
        self._key = secrets.token_bytes(32)
        self._lifetime = lifetime
        self._static_token = static_token
        self._static_scopes = frozenset(scopes)
        # jti -> expiry on the sandbox clock; revoked jtis stay so they can be told apart from forgeries.
        self._expiry: dict[str, float] = {}
        self._revoked: set[str] = set()

    @property
    def issued(self) -> int:
        return len(self._expiry) + len(self._revoked)

    def issue(
        self, *, now: float, wall: float, client_id: str, audience: str, issuer: str, scopes: str
    ) -> IssuedToken:
        """A new token valid for the configured lifetime from `now` (sandbox clock)."""
        jti = secrets.token_hex(8)
        claims = {
            "iss": issuer,
            "sub": f"{client_id}@clients",
            "aud": audience,
            "iat": int(wall),
            "exp": int(wall + self._lifetime),
            "scope": scopes,
            "gty": "client-credentials",
            "azp": client_id,
            "jti": jti,
        }
        header = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": "sandbox"}))
        signing_input = f"{header}.{_b64url(orjson.dumps(claims))}"
        token = f"{signing_input}.{self._sign(signing_input)}"
        self._expiry[jti] = now + self._lifetime
        lifetime = float(self._lifetime)
        return IssuedToken(token, int(lifetime) if lifetime.is_integer() else lifetime, scopes)

    def verify(self, token: str, now: float) -> frozenset[str]:
        """The scopes `token` grants at `now`.

        Raises:
            TokenRejected: with the message the real API gives for that case.
        """
        if self._static_token is not None and hmac.compare_digest(token, self._static_token):
            return self._static_scopes
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected(INVALID_TOKEN)
        if not hmac.compare_digest(parts[2], self._sign(f"{parts[0]}.{parts[1]}")):
            raise TokenRejected(BAD_SIGNATURE)
        claims = orjson.loads(_b64url_decode(parts[1]))
        jti = claims.get("jti")
        if jti in self._revoked:
            raise TokenRejected(EXPIRED_TOKEN)
        expiry = self._expiry.get(jti)
        if expiry is None:
            raise TokenRejected(INVALID_TOKEN)
        if now >= expiry:
            raise TokenRejected(EXPIRED_TOKEN)
        return frozenset(str(claims.get("scope", "")).split())

    def revoke_all(self) -> int:
        """Revoke every token issued so far (not the static one); returns how many."""
        count = len(self._expiry)
        self._revoked.update(self._expiry)
        self._expiry.clear()
        return count

    def _sign(self, signing_input: str) -> str:
        return _b64url(hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest())
