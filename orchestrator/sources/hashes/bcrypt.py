"""bcrypt hashes (Supabase/GoTrue, Rails Devise, PHP apps, Django's `bcrypt$`) and the password
hash file Auth0 support hands out, which is bcrypt too.

The import documents `password_hash` as bcrypt `$2a$`/`$2b$` at 10 rounds, and accepts any cost
and `$2y$` as a `custom_password_hash` of algorithm bcrypt (reference §7): a hash outside the
documented case goes there rather than rely on undocumented leniency.
"""

from __future__ import annotations

import re
from typing import Final

from orchestrator.sources.hashes.credential import NONE, Credential, custom, unsupported

#: $<variant>$<two-digit cost>$<22 salt + 31 hash characters of bcrypt's base64>.
_SHAPE: Final = re.compile(r"\$(2[abxy]?)\$([0-9]{2})\$[./A-Za-z0-9]{53}")
_PASSWORD_HASH_VARIANTS: Final = frozenset({"2a", "2b"})
_PASSWORD_HASH_COST: Final = 10
_MIN_COST: Final = 4
_MAX_COST: Final = 31


def from_bcrypt(text: str) -> Credential:
    """A bcrypt hash as the import takes it.

    `$2a$`/`$2b$` at cost 10 become `password_hash`; `$2y$` (PHP's name for `$2b$`) and other
    costs become a custom bcrypt hash. `$2$` and `$2x$` (crypt_blowfish's buggy 8-bit variant)
    are refused by the import, so they are unsupported; so is anything that is not bcrypt.

    Returns:
        A bcrypt credential; NONE for an empty string (no password was ever set);
        unsupported:bcrypt-variant or unsupported:malformed-bcrypt otherwise.
    """
    if text == "":
        return NONE
    match = _SHAPE.fullmatch(text) if isinstance(text, str) else None
    if match is None or not _MIN_COST <= int(match.group(2)) <= _MAX_COST:
        return unsupported(
            "malformed-bcrypt",
            "not a bcrypt hash: expected $2a$, $2b$ or $2y$, a cost 04-31, '$' and 53 characters",
        )
    variant, cost = match.group(1), int(match.group(2))
    if variant in ("2", "2x"):
        return unsupported(
            "bcrypt-variant",
            f"bcrypt ${variant}$ hashes are refused by the import (only $2a$, $2b$, $2y$)",
        )
    if variant in _PASSWORD_HASH_VARIANTS and cost == _PASSWORD_HASH_COST:
        return Credential("bcrypt", {"password_hash": text})
    return custom("bcrypt", "bcrypt", {"value": text, "encoding": "utf8"})


def from_support_hash(password_hash: str) -> Credential:
    """The `passwordHash` of one line of Auth0 support's password hash export (bcrypt, normally
    `$2b$10$`).

    Returns:
        What from_bcrypt makes of it; NONE for an empty value; unsupported:unknown for a value
        that is not a bcrypt hash at all (the file is documented to hold bcrypt only).
    """
    if password_hash == "":
        return NONE
    if isinstance(password_hash, str) and password_hash.startswith("$2"):
        return from_bcrypt(password_hash)
    return unsupported("unknown", "the support export's passwordHash is not a bcrypt hash")
