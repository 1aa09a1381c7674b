"""The Auth0 bulk-import user schema (reference §7): one rule per property, and `check_user`.

Owns what makes one decoded user valid and, when it is not, every reason why (code, JSON-pointer
path, a one-line message that never quotes a secret). Each rule is the only definition of its
property: `fields` (the strings and booleans), `passwords`, `metadata` and `mfa` hold them,
`vocabulary` the table's names and limits, `user` the whole user. The hash formats' vocabulary and
the checks inside a custom hash's values are `sources.hashes`', shared with the converters.
Normalising users, duplicates and sizes belong elsewhere; their codes are in REASONS.
"""

from __future__ import annotations

from orchestrator.plan.schema.user import RULES, check_user
from orchestrator.plan.schema.vocabulary import (
    ALLOWED_FIELDS,
    AUTH0_EXPORT_FIELDS,
    BOOL_FIELDS,
    FORBIDDEN_APP_METADATA_KEYS,
    MAX_USER_ID,
    MAX_USERNAME,
    MFA_MAX,
    REASONS,
    SPACE_OR_CONTROL,
    STRING_LIMITS,
    Problem,
)
from orchestrator.sources.hashes import ALGORITHMS

__all__ = [
    "ALGORITHMS",
    "ALLOWED_FIELDS",
    "AUTH0_EXPORT_FIELDS",
    "BOOL_FIELDS",
    "FORBIDDEN_APP_METADATA_KEYS",
    "MAX_USERNAME",
    "MAX_USER_ID",
    "MFA_MAX",
    "REASONS",
    "RULES",
    "SPACE_OR_CONTROL",
    "STRING_LIMITS",
    "Problem",
    "check_user",
]
