"""Strict reading of the run directory's JSON: every field typed and checked, every problem named by
its path (`chunks[3].attempts[0].at`), so a damaged manifest or journal line is refused with one
line instead of a traceback. Used by the manifest's loader and the journal's replay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn


class JsonFields:
    """Typed, validated access to one decoded JSON object; problems go to `fail` with their path."""

    __slots__ = ("_data", "_fail", "_where")

    def __init__(self, data: object, where: str, fail: Callable[[str], NoReturn]) -> None:
        if not isinstance(data, dict):
            fail(f"'{where}' is not an object" if where else "the top level is not an object")
        self._data: dict[str, object] = data
        self._where = where
        self._fail = fail

    def fail(self, key: str, problem: str) -> NoReturn:
        """Report `problem` about field `key` of this object."""
        self._fail(f"'{self._path(key)}' {problem}")

    def names(self) -> list[str]:
        return list(self._data)

    def _path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def _get(self, key: str) -> object:
        try:
            return self._data[key]
        except KeyError:
            self._fail(f"missing '{self._path(key)}'")

    def has(self, key: str) -> bool:
        """Whether the object has `key` (for fields later versions of the tool added)."""
        return key in self._data

    def get_int(self, key: str, *, minimum: int = 0) -> int:
        value = self._get(key)
        # bool is an int subclass, and never a valid count.
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.fail(key, f"is {value!r}, expected an integer >= {minimum}")
        return value

    def get_float(self, key: str) -> float:
        value = self._get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.fail(key, f"is {value!r}, expected a number")
        return float(value)

    def get_bool(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            self.fail(key, f"is {value!r}, expected true or false")
        return value

    def get_str(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            self.fail(key, f"is {value!r}, expected a string")
        return value

    def get_opt_str(self, key: str) -> str | None:
        return None if self._get(key) is None else self.get_str(key)

    def present(self, key: str) -> bool:
        """Whether `key` is there and not null (for fields added after version 1 was defined)."""
        return self._data.get(key) is not None

    def get_opt_int(self, key: str) -> int | None:
        return None if self._get(key) is None else self.get_int(key)

    def get_choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self._get(key)
        if value not in choices:
            self.fail(key, f"is {value!r}, expected one of {', '.join(choices)}")
        return str(value)

    def get_opt_choice(self, key: str, choices: tuple[str, ...]) -> str | None:
        return None if self._get(key) is None else self.get_choice(key, choices)

    def get_int_list(self, key: str) -> list[int]:
        value = self._get(key)
        if not isinstance(value, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in value
        ):
            self.fail(key, "is not a list of integers")
        return list(value)

    def get_counts(self, key: str) -> dict[str, int]:
        value = self._get(key)
        if not isinstance(value, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in value.values()
        ):
            self.fail(key, "is not an object of integer counts")
        return dict(value)

    def get_opt_counts(self, key: str) -> dict[str, int] | None:
        return None if self._get(key) is None else self.get_counts(key)

    def get_object(self, key: str) -> JsonFields:
        return JsonFields(self._get(key), self._path(key), self._fail)

    def get_objects(self, key: str) -> list[JsonFields]:
        value = self._get(key)
        if not isinstance(value, list):
            self.fail(key, "is not a list")
        where = self._path(key)
        return [JsonFields(v, f"{where}[{i}]", self._fail) for i, v in enumerate(value)]
