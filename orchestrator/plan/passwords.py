"""Credential coverage: which users would arrive with a password they can sign in with.

A user's first import is the only chance to set its password hash, and a hash Auth0 cannot check is
not an import error (the user just never signs in). So every plan counts its users by credential
kind (`bcrypt`, `pbkdf2`, ..., `none`, `unsupported:<kind>`), `--require-passwords` rejects the users
without a usable one, and a plan from a source that can carry passwords refuses to go on while
some would arrive without, unless told which way (`--allow-missing-passwords` or
`--require-passwords`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

from orchestrator.errors import ConfigError
from orchestrator.plan.schema import Problem
from orchestrator.settings import PlanSettings
from orchestrator.sources.formats import FORMATS
from orchestrator.sources.hashes import ALGORITHMS, BCRYPT, NONE, Credential, unsupported

NO_PASSWORD: Final = "none"
#: Every kind that means "this user can log in with the password they had".
USABLE_KINDS: Final = frozenset(ALGORITHMS)
#: Names of source fields that look like they hold a password, a hash or its salt.
CREDENTIAL_LOOKING: Final = re.compile(r"(?i)pass(?:word)?|pwd|salt|hash|secret|^credentials?$")


def credential_of(user: Mapping[str, object]) -> Credential:
    """The credential of a user already in Auth0's import shape (an export file, a hand-made file,
    a record `--map` gave its hash).

    The fields are {}: the user already carries them. Coverage counts these users like converted
    ones; whether the hash is well formed is the schema's job (`check_user`), except for a
    `password_hash` that is plainly not bcrypt, which is counted as what it is.

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
    if isinstance(algorithm, str) and algorithm in USABLE_KINDS:
        return Credential(algorithm, {})
    return unsupported("unknown", "custom_password_hash has no algorithm the import accepts")


def kind_of(valid_user: Mapping[str, Any]) -> str:
    """The credential kind of a user the schema found valid (so its hash fields are well formed):
    the planner asks it of every user, so it reads two keys and nothing more."""
    if "password_hash" in valid_user:
        return "bcrypt"
    custom = valid_user.get("custom_password_hash")
    return NO_PASSWORD if custom is None else str(custom["algorithm"])


def usable_hashes(coverage: Mapping[str, int]) -> int:
    """Users of a coverage count with a hash Auth0 can check."""
    return sum(users for kind, users in coverage.items() if kind in USABLE_KINDS)


def missing(coverage: Mapping[str, int]) -> int:
    """Users of a coverage count without a usable password."""
    return sum(users for kind, users in coverage.items() if kind not in USABLE_KINDS)


def rejection(kind: str) -> Problem:
    """Why `--require-passwords` refuses a user whose credential is of `kind`."""
    if kind == NO_PASSWORD:
        return Problem(
            "no_password",
            "",
            "the user has no password hash, and --require-passwords is given: add its hash to "
            "the source (or --password-hashes FILE), or drop --require-passwords to import it "
            "without one (it resets)",
        )
    return Problem(
        "unsupported_password",
        "",
        f"the user's password hash ({kind}) is one Auth0 cannot check, and --require-passwords "
        "is given: it can only be imported without (the user resets)",
    )


class PasswordPolicy:
    """The plan's rule for users without a usable password (`PlanSettings.passwords`).

    Args:
        settings: the policy and the source format (whether it can carry passwords at all).
    """

    def __init__(self, settings: PlanSettings) -> None:
        self.require = settings.passwords == "require"
        self._without = settings.passwords == "without"
        self._refuse_missing = (
            settings.passwords == "check" and FORMATS[settings.source.format].carries_passwords
        )
        self._format = settings.source.format

    def check_dropped(self, dropped: Iterable[str]) -> None:
        """Refuse to drop a field that looks like a password, unless passwords are left behind
        on purpose (`--without-passwords`).

        Raises:
            ConfigError: naming the field and what would use it.
        """
        if self._without:
            return
        for name in sorted(dropped):
            if CREDENTIAL_LOOKING.search(name):
                raise ConfigError(
                    f"the field {name!r} looks like a password or its hash, and it would be "
                    f"dropped: read it with the --from that knows it, or map it with --map "
                    f"(password_hash / custom_password_hash); or pass --without-passwords to "
                    "import the users without their passwords; nothing was sent"
                )

    def check(self, coverage: Counter[str], accepted: int) -> None:
        """Refuse a plan whose users would arrive without a password unless the person decided.

        Raises:
            ConfigError: one line with the count, the kinds, and the two ways on.
        """
        without = missing(coverage)
        if self._without or not (self._refuse_missing and without):
            return
        kinds = ", ".join(
            f"{kind} {users:,}"
            for kind, users in sorted(coverage.items())
            if kind not in USABLE_KINDS
        )
        raise ConfigError(
            f"{without:,} of {accepted:,} users of this --from {self._format} export would arrive "
            f"without a usable password ({kinds}), and a first import is the only chance to set "
            "one: fix the source (an Auth0 export needs --password-hashes FILE), or pass "
            "--allow-missing-passwords to import them without (they reset) or "
            "--require-passwords to reject them; nothing was sent"
        )
