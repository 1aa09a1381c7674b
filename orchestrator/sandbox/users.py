"""Users inside the sandbox: the light schema check a job applies, stored profiles, and redaction.

The check mirrors the bulk-import schema's top level (reference §7: required email, no unknown keys,
property types, password_hash/custom_password_hash exclusive) with tv4-style codes; it is deliberately
lighter than the client's own validator, so the client's validator is what stops bad users.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final
from urllib.parse import quote

JsonObject = dict[str, object]

_STRING_FIELDS: Final = frozenset(
    {"email", "phone_number", "user_id", "username", "given_name", "family_name", "name",
     "nickname", "picture", "password_hash"}
)  # fmt: skip
_BOOLEAN_FIELDS: Final = frozenset({"email_verified", "phone_verified", "blocked"})
_OBJECT_FIELDS: Final = frozenset({"custom_password_hash", "app_metadata", "user_metadata"})
_ARRAY_FIELDS: Final = frozenset({"mfa_factors"})
ALLOWED_FIELDS: Final = _STRING_FIELDS | _BOOLEAN_FIELDS | _OBJECT_FIELDS | _ARRAY_FIELDS
#: Attributes an upsert replaces on an existing user (reference §7, §11).
UPSERTABLE_FIELDS: Final = frozenset(
    {"app_metadata", "user_metadata", "email_verified", "given_name", "family_name", "name",
     "nickname", "picture"}
)  # fmt: skip
HASH_ALGORITHMS: Final = frozenset(
    {"argon2", "bcrypt", "hmac", "ldap", "md4", "md5", "sha1", "sha256", "sha512", "pbkdf2",
     "scrypt"}
)  # fmt: skip
#: Profile fields users-by-email returns besides the generated ones; password material never is.
_PUBLIC_FIELDS: Final = (
    "given_name", "family_name", "username", "phone_number", "phone_verified", "blocked",
    "app_metadata", "user_metadata",
)  # fmt: skip
_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
REDACTED: Final = "*****"


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case _:
            return "object"


def _error(code: str, message: str, path: str | None = None) -> JsonObject:
    error: JsonObject = {"code": code, "message": message}
    if path is not None:
        error["path"] = path
    return error


#: The JSON type each accepted property must have, as the Python type orjson decodes it to.
_PYTHON_TYPES: Final[dict[str, type]] = {
    **dict.fromkeys(_STRING_FIELDS, str),
    **dict.fromkeys(_BOOLEAN_FIELDS, bool),
    **dict.fromkeys(_OBJECT_FIELDS, dict),
    **dict.fromkeys(_ARRAY_FIELDS, list),
}
_TYPE_NAMES: Final = {str: "string", bool: "boolean", dict: "object", list: "array"}


def check_user(user: object) -> list[JsonObject]:
    """The per-user errors the sandbox's import reports for `user` (empty: it passes)."""
    if not isinstance(user, dict):
        return [_error("INVALID_TYPE", f"Invalid type: {_json_type(user)} (expected object)", "")]
    errors: list[JsonObject] = []
    for key, value in user.items():
        expected = _PYTHON_TYPES.get(key)
        if expected is None:
            message = f"Additional properties not allowed: {key}"
            errors.append(_error("OBJECT_ADDITIONAL_PROPERTIES", message, key))
        elif not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            message = f"Invalid type: {_json_type(value)} (expected {_TYPE_NAMES[expected]})"
            errors.append(_error("INVALID_TYPE", message, key))
    email = user.get("email")
    if email is None:
        errors.append(_error("OBJECT_REQUIRED", "Missing required property: email", "email"))
    elif isinstance(email, str) and not _EMAIL.match(email):
        message = (
            f"Error in email property - Object didn't pass validation for format email: {email}"
        )
        errors.append(_error("FORMAT", message, "email"))
    if "password_hash" in user and "custom_password_hash" in user:
        message = "Data matches schema from 'not': password_hash and custom_password_hash"
        errors.append(_error("NOT_PASSED", message, "custom_password_hash"))
    custom = user.get("custom_password_hash")
    if custom is not None:
        errors.extend(_check_custom_hash(custom))
    return errors


def _check_custom_hash(value: object) -> list[JsonObject]:
    if not isinstance(value, dict):
        return []
    errors = [
        _error(
            "OBJECT_REQUIRED", f"Missing required property: {key}", f"custom_password_hash.{key}"
        )
        for key in ("algorithm", "hash")
        if key not in value
    ]
    algorithm = value.get("algorithm")
    if algorithm is not None and algorithm not in HASH_ALGORITHMS:
        message = f"No enum match for: {algorithm}"
        errors.append(_error("ENUM_MISMATCH", message, "custom_password_hash.algorithm"))
    return errors


def redact(user: object) -> object:
    """`user` as the errors endpoint echoes it: password material replaced by "*****"."""
    if not isinstance(user, dict):
        return user
    shown = dict(user)
    if "password_hash" in shown:
        shown["password_hash"] = REDACTED
    custom = shown.get("custom_password_hash")
    if isinstance(custom, dict):
        shown["custom_password_hash"] = _redact_custom_hash(custom)
    factors = shown.get("mfa_factors")
    if isinstance(factors, list):
        shown["mfa_factors"] = [_redact_factor(factor) for factor in factors]
    return shown


def _redact_custom_hash(custom: JsonObject) -> JsonObject:
    custom = dict(custom)
    hash_part = custom.get("hash")
    if isinstance(hash_part, dict):
        hash_part = dict(hash_part)
        if "value" in hash_part:
            hash_part["value"] = REDACTED
        key = hash_part.get("key")
        if isinstance(key, dict) and "value" in key:
            # An HMAC key is as secret as the hash itself.
            hash_part["key"] = {**key, "value": REDACTED}
        custom["hash"] = hash_part
    return custom


def _redact_factor(factor: object) -> object:
    if isinstance(factor, dict) and isinstance(factor.get("totp"), dict):
        return {**factor, "totp": {**factor["totp"], "secret": REDACTED}}
    return factor


def _picture(email: str, nickname: str) -> str:
    digest = hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()
    fallback = quote(f"https://cdn.auth0.com/avatars/{nickname[:2].lower()}.png", safe="")
    return f"https://secure.gravatar.com/avatar/{digest}?s=480&r=pg&d={fallback}"


def new_profile(user: JsonObject, *, connection: str, user_id: str, now_iso: str) -> JsonObject:
    """The stored profile of a newly imported user, shaped like GET users-by-email (reference §12.1)."""
    email = str(user["email"]).lower()
    nickname = str(user.get("nickname") or email.split("@", 1)[0])
    identity = {
        "provider": "auth0",
        "connection": connection,
        "isSocial": False,
        "user_id": user_id,
    }
    profile: JsonObject = {
        "email": email,
        "email_verified": bool(user.get("email_verified", False)),
        "created_at": now_iso,
        "updated_at": now_iso,
        "identities": [identity],
        "user_id": f"auth0|{user_id}",
        "name": str(user.get("name") or email),
        "picture": str(user.get("picture") or _picture(email, nickname)),
        "nickname": nickname,
    }
    for key in _PUBLIC_FIELDS:
        if key in user:
            profile[key] = user[key]
    return profile


def apply_upsert(profile: JsonObject, user: JsonObject, now_iso: str) -> None:
    """Replace the upsertable attributes of `profile` with those `user` carries (metadata replaced whole)."""
    for key in UPSERTABLE_FIELDS & user.keys():
        profile[key] = user[key]
    profile["updated_at"] = now_iso
