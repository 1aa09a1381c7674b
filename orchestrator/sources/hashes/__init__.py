"""Password hashes of the sources, converted into what Auth0's bulk import accepts (reference §7):
pure functions, one per source format, each returning a Credential (the import fields and the kind
a coverage report counts), plus a check of `custom_password_hash` values deeper than the schema.

Every conversion is the same computation in Auth0's terms, or it is refused with a reason: a hash
converted wrongly imports fine and then never matches, so guessing is worse than a reset.
"""

from __future__ import annotations

from orchestrator.sources.hashes.bcrypt import from_bcrypt, from_support_hash
from orchestrator.sources.hashes.check import check_custom_password_hash
from orchestrator.sources.hashes.credential import (
    ALGORITHMS,
    BCRYPT,
    NONE,
    Credential,
    unsupported,
)
from orchestrator.sources.hashes.django import from_django
from orchestrator.sources.hashes.firebase import from_firebase
from orchestrator.sources.hashes.keycloak import from_keycloak

__all__ = [
    "ALGORITHMS",
    "BCRYPT",
    "NONE",
    "Credential",
    "check_custom_password_hash",
    "from_bcrypt",
    "from_django",
    "from_firebase",
    "from_keycloak",
    "from_support_hash",
    "unsupported",
]
