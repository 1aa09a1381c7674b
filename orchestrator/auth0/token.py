"""Management API tokens: a static one, or the client-credentials grant's, cached and refreshed.

Owns the cached token, when to refresh it (before `expires_in` runs out, and once after a 401), and
what it allows (granted scopes, read from the grant or the JWT's claims). Sending the grant request is
the client's job: `TokenCache.get` is handed a function that performs it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import orjson

from orchestrator.auth0.credentials import Credentials
from orchestrator.events import EventSink


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the current token allows.

    Attributes:
        scopes: granted scopes, from the grant's ``scope`` field or the JWT's ``scope`` claim.
        expires_at: UNIX time the token expires, if known.
        source: ``"static"`` (a given token) or ``"client_credentials"``.
        scopes_known: False when the token is opaque and the grant said nothing: ``scopes`` is
            then empty for lack of information, not because nothing was granted.
    """

    scopes: frozenset[str]
    expires_at: float | None
    source: str
    scopes_known: bool = True


@dataclass(frozen=True, slots=True)
class Grant:
    """A token grant's answer: the token, its lifetime in seconds and its scope, when given."""

    access_token: str
    expires_in: float | None
    scope: str | None


class TokenCache:
    """The token every request carries; safe to share between the tasks of one event loop."""

    def __init__(self, credentials: Credentials, refresh_margin: float, events: EventSink) -> None:
        self._credentials = credentials
        self._refresh_margin = refresh_margin
        self._events = events
        self._lock: anyio.Lock | None = None
        self._token: str | None = None
        self._refresh_at = 0.0  # monotonic
        self._expires_at: float | None = None  # UNIX time
        self._grant_scope: str | None = None
        self.grants = 0

    @property
    def refreshable(self) -> bool:
        return self._credentials.uses_client_credentials

    @property
    def held(self) -> str | None:
        """The token obtained from the grant, if any (for scrubbing echoes)."""
        return self._token

    async def get(self, fetch: Callable[[], Awaitable[Grant]]) -> str:
        """The token to send now: the static one, the cached one, or a new grant from `fetch`."""
        static = self._credentials.token
        if static is not None:
            return static
        if self._token is not None and time.monotonic() < self._refresh_at:
            return self._token
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            # Another task may have refreshed it while this one queued for the lock.
            if self._token is not None and time.monotonic() < self._refresh_at:
                return self._token
            if not self.grants:
                reason = "initial"
            else:
                reason = "rejected" if self._token is None else "expiring"
            self.grants += 1
            grant = await fetch()
            self._store(grant)
            self._events("token_refreshed", {"reason": reason, "expires_in": grant.expires_in})
            return grant.access_token

    def _store(self, grant: Grant) -> None:
        now = time.monotonic()
        lifetime = grant.expires_in
        if lifetime is not None and lifetime > 0:
            self._refresh_at = now + max(lifetime - self._refresh_margin, lifetime / 2)
            self._expires_at = time.time() + lifetime
        else:
            self._refresh_at = float("inf")
            self._expires_at = None
        self._grant_scope = grant.scope
        self._token = grant.access_token

    def forget(self, token: str) -> None:
        """A 401 for `token`: the next request gets a new one (only one refresh per wave of 401s)."""
        if self._token == token:
            self._token = None

    def info(self, token: str) -> TokenInfo:
        """Scopes and expiry of `token` (the JWT is decoded, NOT verified: a pre-flight hint)."""
        claims = jwt_claims(token)
        scope = self._grant_scope if self.refreshable else None
        scopes_known = scope is not None
        if scope is None and claims is not None:
            claimed = claims.get("scope", claims.get("permissions"))
            if isinstance(claimed, str):
                scope, scopes_known = claimed, True
            elif isinstance(claimed, list):
                scope, scopes_known = " ".join(str(s) for s in claimed), True
        expires_at = self._expires_at
        exp = claims.get("exp") if claims is not None else None
        if expires_at is None and isinstance(exp, int | float) and not isinstance(exp, bool):
            expires_at = float(exp)
        return TokenInfo(
            scopes=frozenset((scope or "").split()),
            expires_at=expires_at,
            source="client_credentials" if self.refreshable else "static",
            scopes_known=scopes_known,
        )


def jwt_claims(token: str) -> dict[str, object] | None:
    """The payload of a JWT, decoded but NOT verified; None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(segment))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None
