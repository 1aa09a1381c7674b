"""The rules of `app_metadata` and `user_metadata`: no reserved key, no '.' or '$' in any key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from orchestrator.plan.schema.vocabulary import (
    FORBIDDEN_APP_METADATA_KEYS,
    MAX_KEY_PROBLEMS,
    OK,
    Problem,
    Problems,
    Rule,
    pointer,
    show_key,
    wrong_type,
)

#: Types with nothing inside to walk (bool listed too: `type()` does not see it as an int).
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
#: What the walk descends into (a tuple: `dict | list` would be built anew at each use).
_CONTAINERS: Final = (dict, list)
# Metadata key names repeat from user to user ("theme", "roles", ...): a name the walk found clean
# is remembered, so the usual small object of known names needs no walk. Bounded; the answer
# depends only on the string.
_CLEAN_KEYS: Final[set[str]] = set()
#: Those of them app_metadata may hold at its top (not reserved).
_CLEAN_APP_KEYS: Final[set[str]] = set()
_MAX_CLEAN_KEYS: Final = 16_384


def _metadata_rule(name: str, forbidden: frozenset[str]) -> Rule:
    """The rule of a metadata object: none of the `forbidden` keys, no bad key at any depth."""
    # The keys the walk found clean before that this object may hold at its top.
    known = _CLEAN_APP_KEYS if forbidden else _CLEAN_KEYS

    def rule(value: object) -> Problems:
        if type(value) is not dict:
            return _metadata(name, forbidden, value)
        # The usual small metadata needs no walk: known keys, and nothing below them but
        # scalars, arrays of scalars and objects of known keys and scalars.
        for key, item in value.items():
            if key not in known:
                return _metadata(name, forbidden, value)
            if type(item) in _SCALARS:
                continue
            if type(item) is list:
                for element in item:
                    if type(element) not in _SCALARS:
                        return _metadata(name, forbidden, value)
            elif not _flat_object(item):
                return _metadata(name, forbidden, value)
        return OK

    return rule


# app_metadata: no reserved key, no '.' or '$' in any key [C] SCHEMA-PAGE, metadata page.
_app_metadata: Final = _metadata_rule("app_metadata", FORBIDDEN_APP_METADATA_KEYS)
# user_metadata: no '.' or '$' in any key [C] metadata page.
_user_metadata: Final = _metadata_rule("user_metadata", frozenset())


# ==================================================================================================
# app_metadata and user_metadata: the key walk
# ==================================================================================================
#: Where a node sits: None for the root, else (its key or index, its parent's trail).
_Trail = tuple[object, "_Trail"] | None


def _flat_object(item: object) -> bool:
    """Whether `item` is an object of keys the walk found clean before, with scalar values."""
    if type(item) is not dict:
        return False
    for key, element in item.items():
        if key not in _CLEAN_KEYS or type(element) not in _SCALARS:
            return False
    return True


def _metadata(name: str, forbidden: frozenset[str], value: object) -> Problems:
    """Every problem of a metadata object: reserved keys first, then bad keys in walk order."""
    path = "/" + name
    if not isinstance(value, dict):
        return (wrong_type(path, name, value, "an object"),)
    out = [
        Problem(
            "forbidden_app_metadata_key",
            pointer(name, key),
            f"app_metadata must not contain {show_key(key)} (Auth0 reserves it); "
            "rename or remove it",
        )
        for key in value
        if key in forbidden
    ]
    bad = _walk_keys(name, value, out)
    if bad > MAX_KEY_PROBLEMS:
        out.append(
            Problem(
                "invalid_metadata_key",
                path,
                f"{name} has {bad - MAX_KEY_PROBLEMS} more keys with '.' or '$' (not listed)",
            )
        )
    return out


def _walk_keys(name: str, root: dict[object, object], out: list[Problem]) -> int:
    """Report keys (at any depth) that are not strings or contain '.' or '$'; return how many.

    Iterative, so no nesting is too deep; depth-first, each object's own keys before its children.
    """
    bad = 0
    stack: list[tuple[object, _Trail]] = [(root, None)]
    while stack:
        node, trail = stack.pop()
        children: Iterable[tuple[object, object]]
        if isinstance(node, dict):
            if not _CLEAN_KEYS.issuperset(node):
                bad = _check_keys(name, node, trail, bad, out)
            if _SCALARS.issuperset(map(type, node.values())):
                continue
            children = node.items()
        elif isinstance(node, list):
            if _SCALARS.issuperset(map(type, node)):
                continue
            children = enumerate(node)
        else:
            continue
        below = [(child, (key, trail)) for key, child in children if isinstance(child, _CONTAINERS)]
        below.reverse()
        stack += below
    return bad


def _check_keys(
    name: str, node: dict[object, object], trail: _Trail, bad: int, out: list[Problem]
) -> int:
    """Report the bad keys of one object (up to the cap) and remember its clean ones."""
    clean: list[str] = []
    for key in node:
        if isinstance(key, str) and "." not in key and "$" not in key:
            if type(key) is str:
                clean.append(key)
            continue
        bad += 1
        if bad <= MAX_KEY_PROBLEMS:
            out.append(_bad_key(name, (key, trail)))
    if len(_CLEAN_KEYS) < _MAX_CLEAN_KEYS:
        _CLEAN_KEYS.update(clean)
        # Never, not even for a moment, a reserved key in the set app_metadata is checked against.
        _CLEAN_APP_KEYS.update(set(clean).difference(FORBIDDEN_APP_METADATA_KEYS))
    return bad


def _bad_key(name: str, trail: _Trail) -> Problem:
    parts: list[object] = []
    while trail is not None:
        parts.append(trail[0])
        trail = trail[1]
    return Problem(
        "invalid_metadata_key",
        pointer(name, *reversed(parts)),
        f"metadata key {show_key(parts[0])} must be a string without '.' or '$'; rename it",
    )


#: Property name -> its rule, in the table's order.
RULES: Final[dict[str, Rule]] = {"app_metadata": _app_metadata, "user_metadata": _user_metadata}
