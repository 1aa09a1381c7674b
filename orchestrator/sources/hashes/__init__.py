"""Password hashes of the sources, converted into what Auth0's bulk import accepts (reference §7):
pure functions, one per source format, each returning a Credential (the import fields and the kind
a coverage report counts); the vocabulary of the hash formats; and the checks of what is inside a
`custom_password_hash`, which the import schema runs once the object's shape is right.

Every conversion is the same computation in Auth0's terms, or it is refused with a reason: a hash
converted wrongly imports fine and then never matches, so guessing is worse than a reset.
"""

from __future__ import annotations

from orchestrator.sources.hashes.bcrypt import (
    REFUSED_VARIANTS,
    bcrypt_fault,
    from_bcrypt,
    from_support_hash,
)
from orchestrator.sources.hashes.check import Faults, value_faults
from orchestrator.sources.hashes.credential import NONE, Credential, unsupported
from orchestrator.sources.hashes.django import from_django
from orchestrator.sources.hashes.firebase import from_firebase
from orchestrator.sources.hashes.keycloak import from_keycloak
from orchestrator.sources.hashes.vocabulary import ALGORITHMS, BCRYPT, DIGEST_SIZES, decode

__all__ = [
    "ALGORITHMS",
    "BCRYPT",
    "DIGEST_SIZES",
    "NONE",
    "REFUSED_VARIANTS",
    "Credential",
    "Faults",
    "bcrypt_fault",
    "decode",
    "from_bcrypt",
    "from_django",
    "from_firebase",
    "from_keycloak",
    "from_support_hash",
    "unsupported",
    "value_faults",
]
