"""What a converter hands back: the import fields of one user's password and the kind a coverage
report counts, plus the kind of a user that is already in Auth0's import shape.

A wrong conversion is not an import error (the import succeeds and the user cannot log in), so a
converter that is not sure says "unsupported" with a reason rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

#: The `custom_password_hash.algorithm` values the import schema accepts (reference §7).
ALGORITHMS: Final = frozenset(
    {
        "argon2",
        "bcrypt",
        "hmac",
        "ldap",
        "md4",
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "pbkdf2",
        "scrypt",
    }
)
#: Every kind that means "this user can log in with the password they had".
USABLE_KINDS: Final = ALGORITHMS
#: What Auth0 reads from `password_hash` and custom bcrypt: $2a$/$2b$/$2y$, cost 04-31, salt + hash.
BCRYPT: Final = re.compile(r"\$2[aby]\$(?:0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


class Credential(NamedTuple):
    """One user's password, converted (or not) for the import.

    Attributes:
        kind: what coverage counts: an algorithm of `USABLE_KINDS` for a hash the user can log in
            with, "none" for no password, "unsupported:<why>" for a hash Auth0 cannot check.
        fields: the import fields to set on the user: {"password_hash": ...} or
            {"custom_password_hash": {...}}; {} for none and unsupported. A fresh dict per call,
            except NONE's: copy it before changing it.
        note: for unsupported, one short reason for people; it never contains the hash or salt.
    """

    kind: str
    fields: dict[str, object]
    note: str = ""


#: No password: the import gives the user a random one and they must reset it.
NONE: Final = Credential("none", {})


def unsupported(kind: str, note: str) -> Credential:
    """An unsupported credential: counted as `unsupported:<kind>`, no import fields."""
    return Credential(f"unsupported:{kind}", {}, note)


def custom(kind: str, algorithm: str, hash_part: dict[str, object], **extra: object) -> Credential:
    """A `custom_password_hash` credential: `{"algorithm", "hash", **extra}`."""
    return Credential(
        kind, {"custom_password_hash": {"algorithm": algorithm, "hash": hash_part, **extra}}
    )


def credential_of(user: Mapping[str, object]) -> Credential:
    """The kind of a user already in Auth0's import shape (an export file, a hand-made file).

    The fields are {}: the user already carries them. Coverage counts these users like converted
    ones; whether the hash is well formed is `check_custom_password_hash`'s and the schema's job,
    except for a `password_hash` that is plainly not bcrypt, which is counted as what it is.

    Returns:
        "bcrypt" for `password_hash`, the algorithm of `custom_password_hash`, or NONE.
    """
    password_hash = user.get("password_hash")
    if password_hash is not None:
        if isinstance(password_hash, str) and BCRYPT.fullmatch(password_hash):
            return Credential("bcrypt", {})
        return unsupported("malformed-bcrypt", "password_hash is not a bcrypt $2a$/$2b$/$2y$ hash")
    custom_hash = user.get("custom_password_hash")
    if custom_hash is None:
        return NONE
    algorithm = custom_hash.get("algorithm") if isinstance(custom_hash, Mapping) else None
    if isinstance(algorithm, str) and algorithm in ALGORITHMS:
        return Credential(algorithm, {})
    return unsupported("unknown", "custom_password_hash has no algorithm the import accepts")
