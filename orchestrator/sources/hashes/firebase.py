"""Firebase Auth users (`firebase auth:export`): their hashes cannot move.

Firebase hashes with its own modified scrypt, keyed by a project-wide signer key; Auth0's scrypt is
the standard one and cannot check these (community thread 88412). The honest conversion is none:
the users are counted as unsupported so that a report says they will need a reset (or a custom
database connection that migrates them at their next login).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.sources.hashes.credential import NONE, Credential, unsupported


def from_firebase(user: Mapping[str, object]) -> Credential:
    """A Firebase export user's password.

    Returns:
        unsupported:firebase-scrypt when the user has a passwordHash, else NONE.
    """
    if user.get("passwordHash") in (None, ""):
        return NONE
    return unsupported(
        "firebase-scrypt",
        "Firebase's modified scrypt cannot be checked by Auth0: the user must reset the password",
    )
