"""What a converter hands back: the import fields of one user's password and the kind a coverage
report counts (the kind of a user already in the import's shape is the plan's to tell).

A wrong conversion is not an import error (the import succeeds and the user cannot log in), so a
converter that is not sure says "unsupported" with a reason rather than guess.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Credential(NamedTuple):
    """One user's password, converted (or not) for the import.

    Attributes:
        kind: what coverage counts: an algorithm of `ALGORITHMS` for a hash the user can log in
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
