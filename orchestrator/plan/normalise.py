"""What is changed in a user before it is judged: the `auth0|` prefix and the fields the schema refuses.

A user is never changed in place: one that needs a change is copied, so that a reject can always
show the user as it was read. Counts the fields dropped, per field.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from orchestrator.plan.schema import ALLOWED_FIELDS
from orchestrator.settings import PlanSettings

#: The import adds this to every user_id of a database connection (reference §10).
USER_ID_PREFIX: Final = "auth0|"
#: The import fields that carry a password: removed from every user by `--without-passwords`.
PASSWORD_FIELDS: Final = frozenset({"password_hash", "custom_password_hash"})
#: Distinct sets of dropped fields counted before folding them into per-field counts.
_MAX_DROPPED_SETS: Final = 4096


class Normaliser:
    """Strips the `auth0|` prefix from user_id (unless kept), drops unknown fields (if asked) and
    the password fields (`--without-passwords`).

    Args:
        settings: `keep_user_id_prefix` and `drop_unknown_fields` decide what it does.
    """

    def __init__(self, settings: PlanSettings) -> None:
        self._strip_prefix = not settings.keep_user_id_prefix
        self._drop_unknown = settings.drop_unknown_fields
        self._drop_passwords = settings.passwords == "without"
        # Counted per set of dropped keys: one increment per user instead of one per field.
        self._dropped_sets: Counter[tuple[str, ...]] = Counter()
        self._dropped_folded: Counter[str] = Counter()

    def __call__(self, value: object) -> object:
        """`value` normalised (its dropped fields counted): the same object when nothing changes,
        else a changed copy."""
        user, dropped = self.apply(value)
        if dropped:
            self.count_dropped(dropped)
        return user

    def apply(self, value: object) -> tuple[object, tuple[str, ...]]:
        """`value` normalised, and the fields dropped from it, not counted yet (`count_dropped`)."""
        if type(value) is not dict:
            return value, ()
        user: dict[str, object] = value
        user_id = user.get("user_id")
        normalised = self.user_id(user_id)
        if normalised is not user_id:
            user = {**user, "user_id": normalised}
        if self._drop_passwords and not PASSWORD_FIELDS.isdisjoint(user):
            user = {key: item for key, item in user.items() if key not in PASSWORD_FIELDS}
        if self._drop_unknown and not ALLOWED_FIELDS.issuperset(user):
            dropped = tuple(key for key in user if key not in ALLOWED_FIELDS)
            return {key: item for key, item in user.items() if key in ALLOWED_FIELDS}, dropped
        return user, ()

    def user_id(self, user_id: object) -> object:
        """A user_id normalised: without its leading `auth0|` unless the prefix is kept."""
        if self._strip_prefix and type(user_id) is str and user_id.startswith(USER_ID_PREFIX):
            return user_id[len(USER_ID_PREFIX) :]
        return user_id

    def count_unknown(self, user: dict[str, object]) -> None:
        """Count the fields `apply` would drop from `user` (a user not normalised otherwise)."""
        if self._drop_unknown and not ALLOWED_FIELDS.issuperset(user):
            self.count_dropped(tuple(key for key in user if key not in ALLOWED_FIELDS))

    def count_dropped(self, keys: tuple[str, ...]) -> None:
        """Count the fields dropped from one user."""
        self._dropped_sets[keys] += 1
        if len(self._dropped_sets) > _MAX_DROPPED_SETS:  # exports with user-specific keys
            self._dropped_folded = self.dropped_fields
            self._dropped_sets.clear()

    @property
    def dropped_fields(self) -> Counter[str]:
        """Field name -> number of users it was dropped from (a new Counter each time)."""
        total = Counter(self._dropped_folded)
        for keys, users in self._dropped_sets.items():
            for key in keys:
                total[str(key)] += users
        return total
