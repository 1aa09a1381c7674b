"""bcrypt hashes (Supabase/GoTrue, Rails Devise, PHP apps, Django's `bcrypt$`) and the password
hash file Auth0 support hands out, which is bcrypt too.

The import documents `password_hash` as bcrypt `$2a$`/`$2b$` at 10 rounds, and accepts any cost
and `$2y$` as a `custom_password_hash` of algorithm bcrypt (reference §7): a hash outside the
documented case goes there rather than rely on undocumented leniency.
"""

from __future__ import annotations

from typing import Final

from orchestrator.sources.hashes.credential import NONE, Credential, custom, unsupported
from orchestrator.sources.hashes.vocabulary import BCRYPT

#: Variants the import refuses, told by their prefix alone: `$2x$` (crypt_blowfish's buggy 8-bit
#: variant) and `$2$` (the first variant, which `$2a$` replaced).
REFUSED_VARIANTS: Final = ("$2x$", "$2$")
_PASSWORD_HASH_VARIANTS: Final = ("$2a$", "$2b$")
_PASSWORD_HASH_COST: Final = "10"
_SHAPE: Final = "$2a$, $2b$ or $2y$, a two-digit cost 04-31, '$' and 53 characters of [./A-Za-z0-9]"


def bcrypt_fault(text: str, what: str = "hash value") -> str:
    """Why `text` is not a bcrypt hash the import reads ("" when it is), naming it as `what`;
    the text itself is never quoted."""
    if BCRYPT.fullmatch(text):
        return ""
    if text.startswith(REFUSED_VARIANTS):
        return f"the {what} is a bcrypt $2x$ or $2$ hash, which the import refuses: only {_SHAPE}"
    return f"the {what} is not a bcrypt hash: it must be {_SHAPE}"


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
    if isinstance(text, str) and text.startswith(REFUSED_VARIANTS):
        variant = text.split("$")[1]
        return unsupported(
            "bcrypt-variant",
            f"bcrypt ${variant}$ hashes are refused by the import (only $2a$, $2b$, $2y$)",
        )
    if not isinstance(text, str) or BCRYPT.fullmatch(text) is None:
        return unsupported(
            "malformed-bcrypt",
            "not a bcrypt hash: expected $2a$, $2b$ or $2y$, a cost 04-31, '$' and 53 characters",
        )
    if text.startswith(_PASSWORD_HASH_VARIANTS) and text[4:6] == _PASSWORD_HASH_COST:
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
