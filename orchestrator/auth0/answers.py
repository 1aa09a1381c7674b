"""The service's answers read into types: jobs, per-user errors, and the text of a refusal.

Everything here trusts nothing it is given: a field of the wrong type is absent, a body that is not
what the endpoint promises is a `TransportError` (the exchange happened, its answer is unusable), and
the service's own words are cut to a line and stripped of control characters before anyone shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import orjson

from orchestrator.errors import TransportError

#: Characters of the service's message kept for an error line.
_MESSAGE_LIMIT: Final = 300
#: Control characters (C0, DEL, C1) in text a server sent: never echoed to a terminal as they are.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True, slots=True)
class Answer:
    """A 2xx answer: its status and parsed JSON (None when empty)."""

    status: int
    body: object


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as GET /jobs/{id} (or the create answer) describes it."""

    id: str
    status: str
    external_id: str | None
    created_at: str | None
    summary: dict[str, int] | None
    percentage_done: int | None
    time_left_seconds: int | None
    status_details: str | None


@dataclass(frozen=True, slots=True)
class UserError:
    """One user the service refused, as echoed by GET /jobs/{id}/errors (hashes come back redacted).

    ``errors`` items have ``code`` and ``message``, and ``path`` when the service gives one.
    """

    user: dict[str, object]
    errors: list[dict[str, str]]


def printable(text: str) -> str:
    """`text` with its control characters (C0, DEL, C1) replaced: a terminal shows it as text."""
    return _CONTROL.sub(" ", text)


def job_info(method: str, path: str, answer: Answer) -> JobInfo:
    body = answer.body
    if not isinstance(body, dict):
        raise malformed(method, path, answer.status, "a job object")
    job_id, status = body.get("id"), body.get("status")
    if not isinstance(job_id, str) or not isinstance(status, str):
        raise malformed(method, path, answer.status, "a job object with id and status")
    summary = body.get("summary")
    return JobInfo(
        id=job_id,
        status=status,
        external_id=_opt_str(body.get("external_id")),
        created_at=_opt_str(body.get("created_at")),
        summary=(
            {k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)}
            if isinstance(summary, dict)
            else None
        ),
        percentage_done=_opt_int(body.get("percentage_done")),
        time_left_seconds=_opt_int(body.get("time_left_seconds")),
        status_details=_opt_str(body.get("status_details")),
    )


class _Unreadable:
    """Marker for an answer body that is not JSON."""


UNREADABLE: Final = _Unreadable()


def parse_json(content: bytes) -> object:
    if not content.strip():
        return None
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return UNREADABLE


def malformed(method: str, path: str, status: int, expected: str) -> TransportError:
    # The exchange happened but its answer is unusable: for a POST a job may exist.
    return TransportError(
        f"{method} {path}: the answer ({status}) is not {expected}", method=method, url=path
    )


def service_message(body: object) -> str:
    """The service's own explanation: Management API ``message``, OAuth ``error_description``."""
    text: object = body
    if isinstance(body, dict):
        text = body.get("message") or body.get("error_description") or body.get("error") or ""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = " ".join(text.split())
    if len(text) > _MESSAGE_LIMIT:
        text = text[: _MESSAGE_LIMIT - 3] + "..."
    return text or "(no message)"


def user_error(method: str, path: str, status: int, item: object) -> UserError:
    if not isinstance(item, dict) or not isinstance(item.get("errors"), list):
        raise malformed(method, path, status, "a list of {user, errors} items")
    user = item.get("user")
    errors = [
        {str(k): str(v) for k, v in error.items() if v is not None}
        for error in item["errors"]
        if isinstance(error, dict)
    ]
    return UserError(user=user if isinstance(user, dict) else {}, errors=errors)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
