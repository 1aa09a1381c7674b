"""Management API access tokens: issued by the client-credentials grant, checked on every /api/v2 call;
and the tokens of a user's password login.

Tokens are HS256 JWTs signed with a per-server key, so a client can read its granted scopes and expiry
from the payload like a real one; validity (expiry, revocation) is decided by the server's own register,
on the sandbox's clock. A login's access token is never registered (the Management API refuses it), and
its ID token is signed with the client secret, as Auth0 signs an HS256 application's ID tokens.
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
#: Auth0's default ID token lifetime (seconds).
ID_TOKEN_LIFETIME: Final = 36_000
#: ID token claims by the OIDC scope that asks for them.
_PROFILE_CLAIMS: Final = ("name", "nickname", "picture", "updated_at")
_EMAIL_CLAIMS: Final = ("email", "email_verified")


class TokenRejected(Exception):
    """The bearer token is missing, malformed, unknown, revoked or expired; the message says which."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the token endpoint returns."""

    access_token: str
    expires_in: float
    scope: str


@dataclass(frozen=True, slots=True)
class UserTokens:
    """What the token endpoint returns for a password login; no ID token unless `openid` was granted."""

    access_token: str
    id_token: str | None
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
        token = self._jwt(claims, self._key)
        self._expiry[jti] = now + self._lifetime
        lifetime = float(self._lifetime)
        return IssuedToken(token, int(lifetime) if lifetime.is_integer() else lifetime, scopes)

    def issue_user(
        self,
        *,
        wall: float,
        client_id: str,
        client_secret: str,
        audience: str,
        issuer: str,
        scope: str,
        profile: dict[str, object],
    ) -> UserTokens:
        """The tokens of a successful login of `profile`'s user; `audience` defaults to /userinfo."""
        userinfo = f"{issuer}userinfo"
        granted = scope.split()
        claims = {
            "iss": issuer,
            "sub": profile["user_id"],
            "aud": [audience, userinfo] if audience and audience != userinfo else userinfo,
            "iat": int(wall),
            "exp": int(wall + self._lifetime),
            "scope": scope,
            "gty": "password",
            "azp": client_id,
            "jti": secrets.token_hex(8),
        }
        access_token = self._jwt(claims, self._key)
        id_token = None
        if "openid" in granted:
            identity: dict[str, object] = {}
            for wanted, names in (("profile", _PROFILE_CLAIMS), ("email", _EMAIL_CLAIMS)):
                if wanted in granted:
                    identity.update({name: profile[name] for name in names if name in profile})
            identity.update(
                iss=issuer,
                aud=client_id,
                sub=profile["user_id"],
                iat=int(wall),
                exp=int(wall + ID_TOKEN_LIFETIME),
            )
            id_token = self._jwt(identity, client_secret.encode())
        lifetime = float(self._lifetime)
        expires_in = int(lifetime) if lifetime.is_integer() else lifetime
        return UserTokens(access_token, id_token, expires_in, scope)

    def _jwt(self, claims: dict[str, object], key: bytes) -> str:
        header = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": "sandbox"}))
        signing_input = f"{header}.{_b64url(orjson.dumps(claims))}"
        return f"{signing_input}.{_hs256(key, signing_input)}"

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
        return _hs256(self._key, signing_input)


def _hs256(key: bytes, signing_input: str) -> str:
    return _b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
