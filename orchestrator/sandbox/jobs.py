"""One import job of the sandbox: its timeline and the JSON the jobs endpoints answer with.

A job's status is a function of time (reference §4): `pending` for the latency, `processing` (with
`percentage_done` and `time_left_seconds`) until its end, then `completed` or `failed`; a completed job
reports `expired` once `expire_after` has passed since creation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import orjson

from orchestrator.sandbox.connections import Connection
from orchestrator.sandbox.store import Summary
from orchestrator.sandbox.users import JsonObject

PARSE_FAILURE = "Failed to parse users file"


@dataclass(frozen=True, slots=True)
class ParsedUsers:
    """A users file after parsing: the users, or None with the job's failure reason."""

    users: list[object] | None
    emails: tuple[str, ...]
    failure: str | None


def parse_users_file(raw: bytes, *, keep_emails: bool) -> ParsedUsers:
    """Parse a users file; anything but a JSON array makes the job fail later, as the service does."""
    try:
        users = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return ParsedUsers(None, (), PARSE_FAILURE)
    if not isinstance(users, list):
        return ParsedUsers(None, (), PARSE_FAILURE)
    emails: tuple[str, ...] = ()
    if keep_emails:
        found = (u.get("email") for u in users if isinstance(u, dict))
        emails = tuple(e.lower() for e in found if isinstance(e, str))
    return ParsedUsers(users, emails, None)


@dataclass(frozen=True, slots=True)
class NewJob:
    """What POST users-imports asks the tenant to create."""

    connection: Connection
    upsert: bool
    send_completion_email: bool
    external_id: str
    request_bytes: int
    parsed: ParsedUsers


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What the sandbox saw and did for one job; times are seconds since the sandbox started."""

    id: str
    external_id: str
    connection_id: str
    upsert: bool
    send_completion_email: bool
    users: int
    emails: tuple[str, ...]
    request_bytes: int
    created: float
    ended: float
    status: str
    summary: Summary | None
    status_details: str | None
    response_dropped: bool

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "external_id": self.external_id,
            "connection_id": self.connection_id,
            "upsert": self.upsert,
            "send_completion_email": self.send_completion_email,
            "users": self.users,
            "emails": list(self.emails),
            "request_bytes": self.request_bytes,
            "created": self.created,
            "ended": self.ended,
            "status": self.status,
            "summary": None if self.summary is None else self.summary.to_json(),
            "status_details": self.status_details,
            "response_dropped": self.response_dropped,
        }


@dataclass(slots=True)
class Job:
    """A job's live state; times are on the sandbox clock."""

    seq: int
    id: str
    connection: Connection
    upsert: bool
    send_completion_email: bool
    external_id: str
    request_bytes: int
    created: float
    created_at: str
    start: float
    end: float
    #: The parsed users file; None when it did not parse (the job will fail).
    users: list[object] | None
    user_count: int
    emails: tuple[str, ...]
    #: status_details of a job that will end `failed`, None for one that will complete.
    failure: str | None
    response_dropped: bool = False
    finished: bool = False
    summary: Summary | None = None
    failures: list[JsonObject] = field(default_factory=list)

    def status(self, now: float, expire_after: float) -> str:
        if now < self.start:
            return "pending"
        if now < self.end or not self.finished:
            return "processing"
        if self.failure is not None:
            return "failed"
        return "expired" if now >= self.created + expire_after else "completed"

    def to_json(self, now: float, expire_after: float) -> dict[str, object]:
        """The body of GET /api/v2/jobs/{id} (and, at creation, of the 202)."""
        status = self.status(now, expire_after)
        body: dict[str, object] = {
            "type": "users_import",
            "status": status,
            "connection_id": self.connection.id,
        }
        if status == "processing":
            duration = self.end - self.start
            done = (now - self.start) / duration if duration > 0 else 1.0
            body["percentage_done"] = min(99, max(0, int(done * 100)))
            body["time_left_seconds"] = max(0, math.ceil(self.end - now))
        if self.summary is not None:
            body["summary"] = self.summary.to_json()
        if status == "failed":
            body["status_details"] = self.failure
        body.update(connection=self.connection.name, created_at=self.created_at, id=self.id)
        if self.external_id:
            body["external_id"] = self.external_id
        return body

    def created_json(self) -> dict[str, object]:
        """The 202 body: a new job is always reported `pending` (reference §1, §12.1)."""
        body = self.to_json(self.created, math.inf)
        body.pop("percentage_done", None)
        body.pop("time_left_seconds", None)
        return {**body, "status": "pending"}

    def generic_error_body(self) -> dict[str, object]:
        """The object form of GET /jobs/{id}/errors, for a job that failed as a whole (reference §5)."""
        return {
            "status": "failed",
            "type": "users_import",
            "created_at": self.created_at,
            "id": self.id,
            "connection_id": self.connection.id,
            "status_details": self.failure,
        }

    def record(self, now: float, expire_after: float, epoch: float) -> JobRecord:
        return JobRecord(
            id=self.id,
            external_id=self.external_id,
            connection_id=self.connection.id,
            upsert=self.upsert,
            send_completion_email=self.send_completion_email,
            users=self.user_count,
            emails=self.emails,
            request_bytes=self.request_bytes,
            created=self.created - epoch,
            ended=self.end - epoch,
            status=self.status(now, expire_after),
            summary=self.summary,
            status_details=self.failure if self.finished else None,
            response_dropped=self.response_dropped,
        )
