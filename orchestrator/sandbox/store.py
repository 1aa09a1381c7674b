"""The tenant's user store and what a finished job does to it (reference §11).

Without upsert, a user matching an existing one on email, user_id or username fails DUPLICATED_USER;
with upsert, an email match updates the upsertable attributes and other matches conflict. A repeat
inside one file fails like the real service ("A user with this email was already provided.").

Each stored user's password hash is kept apart from its profile (a Credential), so no endpoint can show
it: only the login checks it. A hash is set by the user's first import; an upsert carrying one fails
that user, except a custom_password_hash replacing one that no login has used yet (reference §7).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from orchestrator.sandbox.faults import Faults
from orchestrator.sandbox.settings import UserStoreMode
from orchestrator.sandbox.users import JsonObject, apply_upsert, check_user, new_profile, redact

DUPLICATE_EXISTING = "The user already exist and upsert parameter is false"
#: The real message is known for custom_password_hash (sources: "Auth0 Bulk User Import Without Password
#: Hashes"); the same sentence names password_hash when that is the field provided.
HASH_ALREADY_DEFINED = "A {field} was provided, but the user already has password hash defined"
#: None of the documented per-user codes (reference §5) is specific to this case. The schema codes are
#: about the file alone and DUPLICATED_USER means "upsert is false"; CONFLICT is the one documented for
#: a user that clashes with what the tenant already holds.
HASH_ALREADY_DEFINED_CODE = "CONFLICT"


@dataclass(frozen=True, slots=True)
class Summary:
    """A completed job's counts; they always add up: failed + updated + inserted == total."""

    failed: int
    updated: int
    inserted: int
    total: int

    def to_json(self) -> dict[str, int]:
        return {
            "failed": self.failed,
            "updated": self.updated,
            "inserted": self.inserted,
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class Credential:
    """What a stored user signs in with; never part of a profile.

    `stored` is the imported `password_hash` string or `custom_password_hash` object, None for a user
    imported without one (the service gives such a user a random password: nothing logs in). `used`: a
    login has succeeded with it, after which an upsert may no longer replace a custom hash.
    """

    stored: str | JsonObject | None
    used: bool = False

    @property
    def custom(self) -> bool:
        return isinstance(self.stored, dict)


@dataclass(slots=True)
class _Keys:
    """One connection's unique keys; values are profiles in "full" mode, None in "keys" mode.

    `credentials` (by email) is filled in "full" mode only.
    """

    emails: dict[str, JsonObject | None] = field(default_factory=dict)
    user_ids: dict[str, JsonObject | None] = field(default_factory=dict)
    usernames: dict[str, JsonObject | None] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)


class UserStore:
    """Users of every connection, indexed by the keys duplicates are detected on."""

    def __init__(self, mode: UserStoreMode, rng: random.Random) -> None:
        self._mode = mode
        self._rng = rng
        self._connections: dict[str, _Keys] = {}
        self.count = 0

    def by_email(self, email: str) -> list[JsonObject]:
        """Every stored profile with this email (any connection), oldest connection first."""
        wanted = email.lower()
        found = (keys.emails.get(wanted) for keys in self._connections.values())
        return [profile for profile in found if profile is not None]

    def credential(self, connection: str, email: str) -> tuple[JsonObject, Credential] | None:
        """The profile and credential of a user of `connection` ("full" mode only), by email."""
        keys = self._connections.get(connection)
        if keys is None:
            return None
        wanted = email.lower()
        profile, credential = keys.emails.get(wanted), keys.credentials.get(wanted)
        if profile is None or credential is None:
            return None
        return profile, credential

    def age(self, seconds: float) -> None:
        """Move every stored profile's created_at and updated_at `seconds` into the past."""
        for keys in self._connections.values():
            for profile in keys.emails.values():
                if profile is None:
                    continue  # "keys" mode keeps no profiles
                for name in ("created_at", "updated_at"):
                    moment = datetime.fromisoformat(str(profile[name]))  # 3.11 reads the Z
                    older = moment - timedelta(seconds=seconds)
                    profile[name] = older.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def mark_used(self, connection: str, email: str) -> None:
        """A login succeeded with the user's imported hash."""
        keys = self._connections.get(connection)
        wanted = email.lower()
        if keys is not None and wanted in keys.credentials:
            keys.credentials[wanted] = replace(keys.credentials[wanted], used=True)

    def import_users(
        self, users: list[object], *, connection: str, upsert: bool, faults: Faults, now_iso: str
    ) -> tuple[Summary, list[JsonObject]]:
        """Apply one job's users; returns its summary and the error entries of the failed users."""
        keys = self._connections.setdefault(connection, _Keys())
        seen = _Keys()
        failures: list[JsonObject] = []
        inserted = updated = 0
        for user in users:
            errors = check_user(user)
            if not errors and isinstance(user, dict):
                errors = self._refusal(user, keys, seen, upsert, faults)
            if errors or not isinstance(user, dict):
                failures.append({"user": redact(user), "errors": errors})
                continue
            _remember(seen, user, None)
            if upsert and self._update(keys, user, now_iso):
                updated += 1
            else:
                self._insert(keys, user, connection, faults, now_iso)
                inserted += 1
        total = len(users)
        return Summary(len(failures), updated, inserted, total), failures

    def _refusal(
        self, user: JsonObject, keys: _Keys, seen: _Keys, upsert: bool, faults: Faults
    ) -> list[JsonObject]:
        """Why a schema-valid user fails: poisoned, repeated in the file, or clashing with the store."""
        email = str(user["email"]).lower()
        poison = faults.poison_for(email)
        if poison is not None:
            return [{"code": poison.code, "message": poison.message}]
        repeated = _matching_key(seen, user)
        if repeated is not None:
            message = f"A user with this {repeated} was already provided."
            return [{"code": "DUPLICATED_USER", "message": message}]
        existing = _matching_key(keys, user) if self._mode != "none" else None
        if existing is None:
            return []
        if upsert and existing == "email":
            return _hash_refusal(keys, user)
        if not upsert:
            return [{"code": "DUPLICATED_USER", "message": DUPLICATE_EXISTING}]
        code = "CONFLICT_USERNAME" if existing == "username" else "CONFLICT"
        return [{"code": code, "message": f"A user with this {existing} already exists"}]

    def _update(self, keys: _Keys, user: JsonObject, now_iso: str) -> bool:
        email = str(user["email"]).lower()
        if self._mode == "none" or email not in keys.emails:
            return False
        profile = keys.emails[email]
        if profile is not None:
            apply_upsert(profile, user, now_iso)
            custom = user.get("custom_password_hash")
            if isinstance(custom, dict):  # allowed by _hash_refusal: no login used the old one
                keys.credentials[email] = Credential(custom)
        return True

    def _insert(
        self, keys: _Keys, user: JsonObject, connection: str, faults: Faults, now_iso: str
    ) -> None:
        if self._mode == "none" or faults.is_lost(str(user["email"]).lower()):
            return
        user_id = str(user.get("user_id") or self._rng.getrandbits(96).to_bytes(12).hex())
        profile = None
        if self._mode == "full":
            profile = new_profile(user, connection=connection, user_id=user_id, now_iso=now_iso)
            keys.credentials[str(user["email"]).lower()] = Credential(_imported_hash(user))
        _remember(keys, {**user, "user_id": user_id}, profile)
        self.count += 1


def _imported_hash(user: JsonObject) -> str | JsonObject | None:
    stored = user.get("password_hash")
    if isinstance(stored, str):
        return stored
    custom = user.get("custom_password_hash")
    return custom if isinstance(custom, dict) else None


def _hash_refusal(keys: _Keys, user: JsonObject) -> list[JsonObject]:
    """Why an upsert of an existing user fails for the password hash it carries, if it does.

    The whole user fails, its other upsertable fields included: no source says the service applies
    them in this case, and a rehearsal should not report an update the real run may not make. In
    "keys" mode nothing is known of the user's hash, so a custom hash fails too.
    """
    if "password_hash" in user:  # first import only (reference §7)
        field_name = "password_hash"
    elif "custom_password_hash" in user:
        credential = keys.credentials.get(str(user["email"]).lower())
        if credential is not None and credential.custom and not credential.used:
            return []
        field_name = "custom_password_hash"
    else:
        return []
    message = HASH_ALREADY_DEFINED.format(field=field_name)
    return [{"code": HASH_ALREADY_DEFINED_CODE, "message": message}]


def _user_keys(user: JsonObject) -> tuple[str, str | None, str | None]:
    user_id, username = user.get("user_id"), user.get("username")
    return (
        str(user["email"]).lower(),
        f"auth0|{user_id}" if isinstance(user_id, str) and user_id else None,
        username.lower() if isinstance(username, str) and username else None,
    )


def _matching_key(keys: _Keys, user: JsonObject) -> str | None:
    """Which key of `user` ("email", "user_id", "username") is already in `keys`, if any."""
    email, user_id, username = _user_keys(user)
    if email in keys.emails:
        return "email"
    if user_id is not None and user_id in keys.user_ids:
        return "user_id"
    return "username" if username is not None and username in keys.usernames else None


def _remember(keys: _Keys, user: JsonObject, profile: JsonObject | None) -> None:
    email, user_id, username = _user_keys(user)
    keys.emails[email] = profile
    if user_id is not None:
        keys.user_ids[user_id] = profile
    if username is not None:
        keys.usernames[username] = profile
