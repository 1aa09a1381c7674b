"""Fault injection knobs, armed from a FaultPlan at start and changed at run time by tests or over HTTP.

Each knob is a queue of rules ("the next N matching requests"); a request consumes at most one rule of
each kind, so faults compose. Randomness (latency ranges) comes from a seeded generator.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from orchestrator.sandbox.settings import (
    DEFAULT_JOB_FAILURE_DETAILS,
    USER_ERROR_CODES,
    FaultPlan,
    RequestMatch,
)

#: Messages for poisoned users by code; any other code gets the generic one.
_POISON_MESSAGES: Final = {
    "CONFLICT": "A user with this email already exists in another connection",
    "CONFLICT_EMAIL": "A user with this email already exists",
    "CONFLICT_USERNAME": "A user with this username already exists",
    "DUPLICATED_USER": "The user already exist and upsert parameter is false",
    "MFA_FACTORS_FAILED": "Unable to import factors",
}


class FaultKind(StrEnum):
    FAIL_REQUEST = "fail_requests"
    RESET_REQUEST = "reset_requests"
    RESET_AFTER_CREATE = "reset_after_create"
    FAIL_JOB = "fail_jobs"
    RATE_LIMIT_429 = "rate_limit_429s"
    ECHO_TOKEN = "echo_token_errors"


@dataclass(slots=True)
class _Rule:
    kind: FaultKind
    remaining: int
    match: RequestMatch
    status: int = 503
    details: str = ""


@dataclass(frozen=True, slots=True)
class PoisonedUser:
    """How the sandbox fails a poisoned user."""

    code: str
    message: str


class Faults:
    """Live fault knobs of one sandbox; every method is safe to call from another thread."""

    def __init__(self, lock: threading.RLock, seed: int) -> None:
        self._lock = lock
        self._rng = random.Random(seed)
        self._rules: list[_Rule] = []
        self._latency = (0.0, 0.0)
        self._lost: set[str] = set()
        self._poisoned: dict[str, PoisonedUser] = {}
        self._errors_generic_form = False
        #: How many times each fault actually fired.
        self.fired: Counter[str] = Counter()

    def arm(self, plan: FaultPlan) -> None:
        """Add every fault of `plan` to the knobs."""
        fail, reset, limit = (
            plan.fail_requests_match,
            plan.reset_requests_match,
            plan.rate_limit_429s_match,
        )
        status = plan.fail_requests_status
        self.fail_requests(
            plan.fail_requests, status=status, method=fail.method, path_prefix=fail.path_prefix
        )
        self.reset_requests(plan.reset_requests, method=reset.method, path_prefix=reset.path_prefix)
        self.reset_after_create(plan.reset_after_create)
        self.fail_jobs(plan.fail_jobs, details=plan.fail_jobs_details)
        self.rate_limit_429s(
            plan.rate_limit_429s, method=limit.method, path_prefix=limit.path_prefix
        )
        if plan.latency or plan.latency_max:
            self.set_latency(plan.latency, plan.latency_max)
        self.lose_users(plan.lose_users)
        for email, code in plan.poisoned_users.items():
            self.poison_users([email], code=code)
        self.errors_generic_form = plan.errors_generic_form
        self.echo_token_errors(plan.echo_token_errors)

    def fail_requests(
        self,
        count: int,
        *,
        status: int = 503,
        method: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` (500, 502 or 503)."""
        if not 500 <= status <= 599:
            raise ValueError(f"fail_requests status must be 5xx, not {status}")
        match = RequestMatch(method, path_prefix)
        self._add(_Rule(FaultKind.FAIL_REQUEST, count, match, status=status))

    def reset_requests(
        self, count: int, *, method: str | None = None, path_prefix: str | None = None
    ) -> None:
        """Close the connection of the next `count` matching requests without answering."""
        self._add(_Rule(FaultKind.RESET_REQUEST, count, RequestMatch(method, path_prefix)))

    def reset_after_create(self, count: int) -> None:
        """The next `count` import POSTs create their job, then lose the connection unanswered."""
        self._add(_Rule(FaultKind.RESET_AFTER_CREATE, count, RequestMatch()))

    def fail_jobs(self, count: int, *, details: str = DEFAULT_JOB_FAILURE_DETAILS) -> None:
        """The next `count` jobs created end `failed` with `status_details` = `details`."""
        self._add(_Rule(FaultKind.FAIL_JOB, count, RequestMatch(), details=details))

    def rate_limit_429s(
        self, count: int, *, method: str | None = None, path_prefix: str | None = None
    ) -> None:
        """Answer the next `count` matching requests with the global rate-limit 429."""
        self._add(_Rule(FaultKind.RATE_LIMIT_429, count, RequestMatch(method, path_prefix)))

    def echo_token_errors(self, count: int) -> None:
        """The next `count` JSON error answers of the Management API to a request that carries a bearer
        token quote that token in their `message` (as some proxies do)."""
        self._add(_Rule(FaultKind.ECHO_TOKEN, count, RequestMatch(path_prefix="/api/v2/")))

    def set_latency(self, seconds: float, maximum: float | None = None) -> None:
        """Delay every answer by `seconds`, or by a seeded uniform draw in [seconds, maximum]."""
        high = seconds if maximum is None else maximum
        if seconds < 0 or high < seconds:
            raise ValueError("latency must be >= 0 and maximum >= seconds")
        with self._lock:
            self._latency = (seconds, high)

    def lose_users(self, emails: Iterable[str]) -> None:
        """Jobs count these users inserted but never store them (users-by-email will not find them)."""
        with self._lock:
            self._lost.update(email.lower() for email in emails)

    def poison_users(
        self, emails: Iterable[str], *, code: str = "CONFLICT", message: str | None = None
    ) -> None:
        """Jobs fail these users with `code` (one of the documented per-user error codes)."""
        if code not in USER_ERROR_CODES:
            raise ValueError(f"unknown user error code {code!r}")
        text = message or _POISON_MESSAGES.get(code, f"The user was rejected ({code})")
        with self._lock:
            for email in emails:
                self._poisoned[email.lower()] = PoisonedUser(code, text)

    @property
    def errors_generic_form(self) -> bool:
        return self._errors_generic_form

    @errors_generic_form.setter
    def errors_generic_form(self, value: bool) -> None:
        with self._lock:
            self._errors_generic_form = value

    def clear(self) -> None:
        """Disarm every fault (the fired counts stay)."""
        with self._lock:
            self._rules.clear()
            self._latency = (0.0, 0.0)
            self._lost.clear()
            self._poisoned.clear()
            self._errors_generic_form = False

    def take(self, kind: FaultKind, method: str = "", path: str = "") -> _Rule | None:
        """Consume one armed rule of `kind` matching the request, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.kind is kind and rule.remaining > 0 and rule.match.matches(method, path):
                    rule.remaining -= 1
                    self.fired[kind.value] += 1
                    self._rules = [r for r in self._rules if r.remaining > 0]
                    return rule
            return None

    def latency_seconds(self) -> float:
        with self._lock:
            low, high = self._latency
            return low if high <= low else self._rng.uniform(low, high)

    def is_lost(self, email: str) -> bool:
        return email in self._lost

    def poison_for(self, email: str) -> PoisonedUser | None:
        return self._poisoned.get(email)

    def pending(self) -> dict[str, object]:
        """What is still armed, for GET /sandbox/state."""
        with self._lock:
            remaining: Counter[str] = Counter()
            for rule in self._rules:
                remaining[rule.kind.value] += rule.remaining
            return {
                **{kind.value: remaining[kind.value] for kind in FaultKind},
                "latency": list(self._latency),
                "lose_users": sorted(self._lost),
                "poisoned_users": {e: p.code for e, p in sorted(self._poisoned.items())},
                "errors_generic_form": self._errors_generic_form,
            }

    def _add(self, rule: _Rule) -> None:
        if rule.remaining < 0:
            raise ValueError("fault counts must be >= 0")
        if rule.remaining:
            with self._lock:
                self._rules.append(rule)


def _match_from(spec: Mapping[str, object]) -> dict[str, str | None]:
    method, prefix = spec.get("method"), spec.get("path_prefix")
    if not (method is None or isinstance(method, str)) or not (
        prefix is None or isinstance(prefix, str)
    ):
        raise TypeError("method and path_prefix must be strings")
    return {"method": method, "path_prefix": prefix}


def _count_spec(value: object) -> tuple[int, Mapping[str, object]]:
    """`3` or `{"count": 3, ...}` -> (3, the options)."""
    spec: Mapping[str, object] = {"count": value} if isinstance(value, int) else {}
    if isinstance(value, Mapping):
        spec = value
    count = spec.get("count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"a fault needs an integer count, got {value!r}")
    return count, spec


def apply_fault_request(faults: Faults, body: Mapping[str, object]) -> None:
    """Arm the faults a POST /sandbox/faults body names.

    Keys: `fail_requests` / `reset_requests` / `rate_limit_429s` (a count, or {"count", "method",
    "path_prefix"}, plus "status" for fail_requests), `reset_after_create` and `echo_token_errors` (a
    count), `fail_jobs` (a count or {"count", "details"}), `latency` (seconds or {"min", "max"}), `lose_users` (emails),
    `poisoned_users` ({email: code}), `errors_generic_form` (bool), `clear` (true). The app handles
    `expire_tokens` (true) itself.

    Raises:
        ValueError, TypeError: an unknown key or a malformed value; nothing after it is applied.
    """
    for key, value in body.items():
        if key in {"fail_requests", "reset_requests", "rate_limit_429s"}:
            count, spec = _count_spec(value)
            match = _match_from(spec)
            if key == "fail_requests":
                status = spec.get("status", 503)
                if not isinstance(status, int):
                    raise TypeError("fail_requests.status must be an integer")
                faults.fail_requests(count, status=status, **match)
            elif key == "reset_requests":
                faults.reset_requests(count, **match)
            else:
                faults.rate_limit_429s(count, **match)
        elif key == "reset_after_create":
            faults.reset_after_create(_count_spec(value)[0])
        elif key == "echo_token_errors":
            faults.echo_token_errors(_count_spec(value)[0])
        elif key == "fail_jobs":
            count, spec = _count_spec(value)
            details = spec.get("details", DEFAULT_JOB_FAILURE_DETAILS)
            faults.fail_jobs(count, details=str(details))
        else:
            _apply_other(faults, key, value)


def _apply_other(faults: Faults, key: str, value: object) -> None:
    if key == "latency":
        low, high = (
            (value, None)
            if not isinstance(value, Mapping)
            else (value.get("min"), value.get("max"))
        )
        if not isinstance(low, int | float) or not (high is None or isinstance(high, int | float)):
            raise TypeError("latency must be seconds or {min, max}")
        faults.set_latency(float(low), None if high is None else float(high))
    elif key == "lose_users" and isinstance(value, list):
        faults.lose_users(str(email) for email in value)
    elif key == "poisoned_users" and isinstance(value, Mapping):
        for email, code in value.items():
            faults.poison_users([str(email)], code=str(code))
    elif key == "errors_generic_form" and isinstance(value, bool):
        faults.errors_generic_form = value
    elif key == "clear" and value is True:
        faults.clear()
    else:
        raise ValueError(f"unknown or malformed fault {key!r}")
