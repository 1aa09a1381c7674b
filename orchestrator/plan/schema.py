"""TEMPORARY bridge to the old validator until the one-encoding schema lands."""

from __future__ import annotations

from orchestrator.validation import (
    ALLOWED_FIELDS,
    AUTH0_EXPORT_FIELDS,
    BOOL_FIELDS,
    FORBIDDEN_APP_METADATA_KEYS,
    REASONS,
    NormaliseOptions,
    Problem,
    UserValidator,
)

__all__ = [
    "ALLOWED_FIELDS",
    "AUTH0_EXPORT_FIELDS",
    "BOOL_FIELDS",
    "FORBIDDEN_APP_METADATA_KEYS",
    "REASONS",
    "Problem",
    "check_user",
]

_validator = UserValidator(NormaliseOptions(keep_user_id_prefix=True))


def check_user(user: object) -> list[Problem]:
    return _validator.check(user)
