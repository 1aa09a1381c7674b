"""One user against the import schema: unknown fields, the required email, each property's rule,
and the exclusive password pair.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Final

from orchestrator.plan.schema import fields, metadata, mfa, passwords
from orchestrator.plan.schema.vocabulary import (
    ALLOWED_FIELDS,
    AUTH0_EXPORT_FIELDS,
    OK,
    Problem,
    Problems,
    Rule,
    json_type,
    key_text,
    pointer,
    show_key,
)


def check_user(user: object) -> list[Problem]:
    """Every problem of one normalised, decoded user; [] if it can be imported.

    Args:
        user: one decoded entry of the export (anything: a non-object gets `not_an_object`).

    Returns:
        The problems in a stable order: unknown fields, missing email, then each field's in the
        user's key order, then exclusive password fields. Never raises.
    """
    if type(user) is not dict:
        if not isinstance(user, dict):
            return [_not_an_object(user)]
        user = dict(user)  # a dict subclass from a library caller: checked as the plain object
    keys = tuple(user)
    return (_LAYOUTS.get(keys) or _layout(keys))(user)


#: The check of the users of one key layout: the problems the keys alone give (unknown fields,
#: missing email; exclusive password fields) around those of each value's rule, in key order.
_Check = Callable[[dict[object, object]], list[Problem]]
#: Key layouts seen so far: an export has tens to hundreds. Bounded in number and in size, against
#: hostile inputs; a layout of an export with many extra fields (each named in a message worked
#: out with difflib) is still remembered.
_LAYOUTS: Final[dict[tuple[object, ...], _Check]] = {}
_MAX_LAYOUTS: Final = 2048
_MAX_LAYOUT_KEYS: Final = 256


def _layout(keys: tuple[object, ...]) -> _Check:
    """The check of the layout `keys`, remembered (plain string keys only: else 1 == 1.0 == True
    would share one layout's messages)."""
    rules = tuple(RULES.get(key, _no_rule) if isinstance(key, str) else _no_rule for key in keys)
    head = [_unknown_field(key) for key in keys if key not in ALLOWED_FIELDS]
    if "email" not in keys:
        head.append(_MISSING_EMAIL)
    tail = (_EXCLUSIVE,) if "password_hash" in keys and "custom_password_hash" in keys else ()
    if len(keys) > _MAX_LAYOUT_KEYS or not all(type(key) is str for key in keys):
        return _looped(rules, tuple(head), tail)
    check = _compiled(rules, tuple(head), tail)
    if len(_LAYOUTS) >= _MAX_LAYOUTS:
        _LAYOUTS.clear()
    _LAYOUTS[keys] = check
    return check


def _looped(
    rules: tuple[Rule, ...], head: tuple[Problem, ...], tail: tuple[Problem, ...]
) -> _Check:
    """The check of a layout not worth remembering: what its keys alone give, around each
    value's rule in key order."""

    def check(user: dict[object, object]) -> list[Problem]:
        found = [*head]
        for rule, value in zip(rules, user.values(), strict=True):
            problems = rule(value)
            if problems:
                found += problems
        found += tail
        return found

    return check


def _compiled(
    rules: tuple[Rule, ...], head: tuple[Problem, ...], tail: tuple[Problem, ...]
) -> _Check:
    """The same check as `_looped`, written out once per layout as straight-line code:
    `[*head, *r0(v0), *r1(v1), ..., *tail]`.

    In a loop, one call site calls a different rule each time round, which defeats the
    interpreter's call caches; here each call site always calls the same rule (a sixth of the
    time of checking a typical user, the planner's largest single cost). The rules stay the only encoding of the schema: the
    source only names them, by position, never a key or a value.
    """
    values = "".join(f"v{index}, " for index in range(len(rules)))
    calls = [f"*r{index}(v{index})" for index in range(len(rules))]
    items = [*(["*head"] if head else []), *calls, *(["*tail"] if tail else [])]
    lines = ["def check(user):"]
    if rules:
        lines.append(f"    {values}= user.values()")
    lines.append(f"    return [{', '.join(items)}]")
    namespace: dict[str, object] = {f"r{index}": rule for index, rule in enumerate(rules)}
    namespace.update(head=head, tail=tail)
    exec("\n".join(lines), namespace)  # noqa: S102 (generated names only, see above)
    # Taken out of its own globals: no reference cycle (planning runs with the collector off).
    check: _Check = namespace.pop("check")  # type: ignore[assignment]
    return check


def _no_rule(value: object) -> Problems:
    """The rule of a key outside the schema: its value is not looked at (`unknown_field` says it)."""
    return OK


def _not_an_object(value: object) -> Problem:
    return Problem(
        "not_an_object",
        "",
        f"this entry is {json_type(value)}, not a user object; "
        "each entry of the export must be a JSON object",
    )


def _unknown_field(key: object) -> Problem:
    if key in AUTH0_EXPORT_FIELDS:
        hint = (
            "it comes from an Auth0 users export: read it with --from auth0-export (or drop such "
            "fields with --drop-unknown-fields)"
        )
    elif key == "password":
        hint = "plain-text passwords cannot be imported; give password_hash or custom_password_hash"
    else:
        close = difflib.get_close_matches(key_text(key), sorted(ALLOWED_FIELDS), n=1, cutoff=0.75)
        hint = (
            f"did you mean {close[0]!r}? (names are case-sensitive)"
            if close
            else "remove it or move it into user_metadata (or use --drop-unknown-fields)"
        )
    return Problem(
        "unknown_field",
        pointer(key),
        f"field {show_key(key)} is not accepted by the import schema; {hint}",
    )


_MISSING_EMAIL: Final = Problem(
    "missing_email",
    "/email",
    "email is missing; the import schema requires an email for every user",
)
_EXCLUSIVE: Final = Problem(
    "exclusive_password_fields",
    "/custom_password_hash",
    "password_hash and custom_password_hash are mutually exclusive; keep only one",
)


#: Property name -> its rule, in the table's order.
RULES: Final[dict[str, Rule]] = {**fields.RULES, **passwords.RULES, **metadata.RULES, **mfa.RULES}
assert RULES.keys() == ALLOWED_FIELDS
