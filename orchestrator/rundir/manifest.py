"""The run's state as data: the plan, every chunk's status and attempts, and manifest.json's format.

This module owns the data model and its JSON form (strictly validated on load). It never writes:
`tracker.py` owns every change and every write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

import orjson

from orchestrator.errors import RunDirError
from orchestrator.rundir.jsonfields import JsonFields
from orchestrator.settings import PlanSettings, UploadSettings

#: The manifest format this code reads and writes; any other version is refused.
MANIFEST_VERSION = 1

CHUNK_STATES = ("planned", "submitting", "pending", "processing", "completed", "failed")
#: States in which a chunk has a running attempt (its last one, with no outcome yet).
ACTIVE_STATES = frozenset({"submitting", "pending", "processing"})
#: How an attempt can end. "rejected": 4xx on the POST; "unknown": the process died (or the
#: connection broke) during the POST; "lost": the job vanished (404, deleted after 24 hours).
ATTEMPT_OUTCOMES = ("completed", "failed", "expired", "timeout", "rejected", "unknown", "lost")
#: Endings that say nothing of what became of the users: the tenant decides (a `Resolution`).
UNKNOWN_OUTCOMES = frozenset({"unknown", "lost"})
#: What a resolution settled: the users of an attempt whose outcome was unknown, before sending
#: again ("unseen_job"), or the DUPLICATED_USER failures of a job sent after one ("duplicates").
RESOLUTION_KINDS = ("unseen_job", "duplicates")

_HINT = "point --run-dir at a run directory or start a new one"


@dataclass(slots=True)
class Attempt:
    """One submission of a chunk: from `submitting` until its job (or the POST) ended."""

    number: int
    started_at: str
    job_id: str | None = None
    ended_at: str | None = None
    outcome: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class Resolution:
    """What the tenant said about users whose import could not be read from a job.

    An "unseen_job" resolution settles attempt `attempt` (its outcome unknown or lost) before the
    chunk is sent again: of the users of the file that attempt sent, `looked_up` were looked up,
    `found` of them are in the connection, created (or, with upsert, updated) at or after `since`
    (the chunk's first submission on the service's clock): imported by the job we never saw.
    `resent` users are left to send: the same file again when it is all of them (a sample found
    none), else `file` (their own users file, `sha256` and `bytes` recorded before it is sent);
    0 completes the chunk.

    A "duplicates" resolution checks the DUPLICATED_USER failures of the completed attempt
    `attempt`: `found` of the `looked_up` were created by an earlier, unseen job of the chunk, so
    they are imported, not failed.

    `inserted` and `updated` split the users found.
    """

    kind: str
    attempt: int
    at: str
    since: str
    looked_up: int
    found: int
    inserted: int
    updated: int
    resent: int
    file: str | None = None
    sha256: str | None = None
    bytes: int | None = None


@dataclass(slots=True)
class ChunkRecord:
    """A chunk file of the plan and everything that happened to it.

    `job_id` is the job of the latest attempt (cleared when a new attempt starts); `failure` says
    why a `failed` chunk was given up. `ambiguous` counts the attempts whose outcome was unknown
    (a POST cut off, a job not found); `resolutions` says what the tenant made of them.
    """

    index: int
    file: str
    sha256: str
    bytes: int
    users: int
    first_position: int
    last_position: int
    external_id: str
    status: str = "planned"
    job_id: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    summary: dict[str, int] | None = None
    errors_saved: bool = False
    ambiguous: int = 0
    failure: str | None = None
    resolutions: list[Resolution] = field(default_factory=list)

    def sending(self) -> tuple[str, str, int, int]:
        """The users file the next submission sends: (file, sha256, bytes, users).

        The chunk's own file, unless a resolution left only some of its users to send.
        """
        for resolution in reversed(self.resolutions):
            file, sha256, size = resolution.file, resolution.sha256, resolution.bytes
            if resolution.kind == "unseen_job" and file is not None:
                # Loading checks that a file comes with its digest and size.
                return file, sha256 or "", size or 0, resolution.resent
        return self.file, self.sha256, self.bytes, self.users

    def needs_resolution(self) -> bool:
        """Its last attempt ended unknown and the tenant was not asked yet: do not send blindly."""
        if self.status != "planned" or not self.attempts:
            return False
        last = self.attempts[-1]
        return last.outcome in UNKNOWN_OUTCOMES and not any(
            r.kind == "unseen_job" and r.attempt == last.number for r in self.resolutions
        )

    def imported_unseen(self) -> tuple[int, int]:
        """Users (inserted, updated) that unseen jobs of this chunk imported, by its resolutions."""
        inserted = updated = 0
        for resolution in self.resolutions:
            if resolution.kind == "unseen_job":
                inserted += resolution.inserted
                updated += resolution.updated
        return inserted, updated


@dataclass(slots=True)
class TenantRecord:
    """The tenant a run sends to: the Management API audience names it, the base URL reaches it."""

    audience: str
    base_url: str


@dataclass(slots=True)
class InputInfo:
    """The export the plan was made from (its fingerprint tells a re-run from another input)."""

    path: str
    bytes: int
    sha256: str
    format: str
    compressed: bool = False


@dataclass(slots=True)
class RunSettings:
    """The settings recorded with a run: the first five may change between invocations (through
    the journal), the last four decided the chunk files and never change.

    `connection_id` is None for a plan made by `chunk` that was never run.
    """

    connection_id: str | None
    upsert: bool
    send_completion_email: bool
    job_slots: int  # 0 = auto: discovered from the service's slot-limit answers
    max_attempts: int
    max_request_bytes: int
    external_id_prefix: str
    keep_user_id_prefix: bool
    drop_unknown_fields: bool
    #: The `--from` format the export was read as (manifests before it: the import format).
    source_format: str = "import"

    @classmethod
    def of(
        cls, plan: PlanSettings, external_id_prefix: str, upload: UploadSettings | None
    ) -> RunSettings:
        """What a new run records: its plan settings and, for `run`, its upload settings."""
        sending = upload if upload is not None else _UNSENT
        return cls(
            connection_id=upload.connection_id if upload is not None else None,
            upsert=sending.upsert,
            send_completion_email=sending.send_completion_email,
            job_slots=sending.job_slots,
            max_attempts=sending.max_attempts,
            max_request_bytes=plan.max_request_bytes,
            external_id_prefix=external_id_prefix,
            keep_user_id_prefix=plan.keep_user_id_prefix,
            drop_unknown_fields=plan.drop_unknown_fields,
            source_format=plan.source.format,
        )

    def upload_settings(self) -> UploadSettings:
        """The upload settings this run sends with (it must have a connection)."""
        if self.connection_id is None:
            raise RunDirError("this plan was made by `chunk` and never run: it has no connection")
        return UploadSettings(
            connection_id=self.connection_id,
            upsert=self.upsert,
            send_completion_email=self.send_completion_email,
            job_slots=self.job_slots,
            max_attempts=self.max_attempts,
        )


#: The sending settings a plan made by `chunk` records until a `run` gives it a connection.
_UNSENT = UploadSettings(connection_id="con_" + "0" * 16)


@dataclass(slots=True)
class PlanTotals:
    """Counts of the planning pass."""

    users_read: int = 0
    users_accepted: int = 0
    users_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_fields: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    #: Records not imported on purpose, by reason (another connection, a service account).
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    #: Accepted users by credential kind (`bcrypt`, ..., `none`, `unsupported:<kind>`).
    credentials: dict[str, int] = field(default_factory=dict)
    chunk_bytes: int = 0
    mean_fill: float = 0.0


@dataclass(slots=True)
class Manifest:
    """Everything a run directory knows: `DIR/manifest.json` plus the journal folded into it."""

    version: int
    run_id: str
    created_at: str
    input: InputInfo
    settings: RunSettings
    totals: PlanTotals
    chunks: list[ChunkRecord]
    journal_seq: int = 0
    #: Recorded when the run first sends (None: a plan never sent, or a run older than the field).
    tenant: TenantRecord | None = None

    def to_json(self) -> bytes:
        """Serialise to manifest.json's format (indented: people read it)."""
        return orjson.dumps(self, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_json(cls, data: bytes, *, path: str) -> Manifest:
        """Parse and validate manifest.json.

        Args:
            data: the file's content.
            path: how to name the file in messages.

        Raises:
            RunDirError: not JSON, not a manifest of this tool, another format version, or
                internally inconsistent (one line saying what and what to do).
        """

        def fail(problem: str) -> NoReturn:
            raise RunDirError(f"{path} is not a manifest of this tool ({problem}); {_HINT}")

        try:
            decoded = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            fail(f"not valid JSON: {exc}")
        top = JsonFields(decoded, "", fail)
        version = top.get_int("version")
        if version != MANIFEST_VERSION:
            raise RunDirError(
                f"{path} has manifest version {version}, this orchestrator reads version "
                f"{MANIFEST_VERSION}; use the orchestrator release that made it, or start a new "
                "run dir"
            )
        return _manifest(top)


def _manifest(top: JsonFields) -> Manifest:
    manifest = Manifest(
        version=MANIFEST_VERSION,
        run_id=top.get_str("run_id"),
        created_at=top.get_str("created_at"),
        input=_input(top.get_object("input")),
        settings=_settings(top.get_object("settings")),
        totals=_totals(top.get_object("totals")),
        chunks=[_chunk(fields) for fields in top.get_objects("chunks")],
        journal_seq=top.get_int("journal_seq"),
        tenant=_tenant(top.get_object("tenant")) if top.present("tenant") else None,
    )
    for position, chunk in enumerate(manifest.chunks):
        # The tracker finds chunk i at chunks[i]: O(1) per transition depends on it.
        if chunk.index != position:
            top.fail(f"chunks[{position}].index", f"is {chunk.index}, expected {position}")
    return manifest


def _tenant(f: JsonFields) -> TenantRecord:
    return TenantRecord(audience=f.get_str("audience"), base_url=f.get_str("base_url"))


def _input(f: JsonFields) -> InputInfo:
    return InputInfo(
        path=f.get_str("path"),
        bytes=f.get_int("bytes"),
        sha256=f.get_str("sha256"),
        format=f.get_str("format"),
        compressed=f.get_bool("compressed"),
    )


def _settings(f: JsonFields) -> RunSettings:
    return RunSettings(
        connection_id=f.get_opt_str("connection_id"),
        upsert=f.get_bool("upsert"),
        send_completion_email=f.get_bool("send_completion_email"),
        max_request_bytes=f.get_int("max_request_bytes", minimum=1),
        job_slots=f.get_int("job_slots", minimum=0),
        max_attempts=f.get_int("max_attempts", minimum=1),
        external_id_prefix=f.get_str("external_id_prefix"),
        keep_user_id_prefix=f.get_bool("keep_user_id_prefix"),
        drop_unknown_fields=f.get_bool("drop_unknown_fields"),
        source_format=f.get_str("source_format") if f.has("source_format") else "import",
    )


def _totals(f: JsonFields) -> PlanTotals:
    return PlanTotals(
        users_read=f.get_int("users_read"),
        users_accepted=f.get_int("users_accepted"),
        users_rejected=f.get_int("users_rejected"),
        rejected_by_reason=f.get_counts("rejected_by_reason"),
        dropped_fields=f.get_counts("dropped_fields"),
        skipped_by_reason=f.get_counts("skipped_by_reason") if f.has("skipped_by_reason") else {},
        credentials=f.get_counts("credentials") if f.has("credentials") else {},
        chunks=f.get_int("chunks"),
        chunk_bytes=f.get_int("chunk_bytes"),
        mean_fill=f.get_float("mean_fill"),
    )


def _chunk(f: JsonFields) -> ChunkRecord:
    chunk = ChunkRecord(
        index=f.get_int("index"),
        file=_relative_file(f),
        sha256=f.get_str("sha256"),
        bytes=f.get_int("bytes"),
        users=f.get_int("users"),
        first_position=f.get_int("first_position"),
        last_position=f.get_int("last_position"),
        external_id=f.get_str("external_id"),
        status=f.get_choice("status", CHUNK_STATES),
        job_id=f.get_opt_str("job_id"),
        attempts=[_attempt(a) for a in f.get_objects("attempts")],
        summary=f.get_opt_counts("summary"),
        errors_saved=f.get_bool("errors_saved"),
        ambiguous=f.get_int("ambiguous"),
        failure=f.get_opt_str("failure"),
        # Absent from manifests written before resolutions existed.
        resolutions=[read_resolution(r) for r in f.get_objects("resolutions")]
        if f.present("resolutions")
        else [],
    )
    _check_consistent(chunk, f)
    return chunk


def read_resolution(f: JsonFields) -> Resolution:
    """A resolution as the manifest and the journal spell it, checked for consistency."""
    resolution = Resolution(
        kind=f.get_choice("kind", RESOLUTION_KINDS),
        attempt=f.get_int("attempt", minimum=1),
        at=f.get_str("at"),
        since=f.get_str("since"),
        looked_up=f.get_int("looked_up"),
        found=f.get_int("found"),
        inserted=f.get_int("inserted"),
        updated=f.get_int("updated"),
        resent=f.get_int("resent"),
        file=f.get_opt_str("file") if f.present("file") else None,
        sha256=f.get_opt_str("sha256") if f.present("sha256") else None,
        bytes=f.get_opt_int("bytes") if f.present("bytes") else None,
    )
    if resolution.found > resolution.looked_up:
        f.fail("found", f"is {resolution.found}, more than the {resolution.looked_up} looked up")
    if resolution.inserted + resolution.updated != resolution.found:
        f.fail("inserted", "and updated do not add up to the users found")
    if resolution.file is not None:
        _check_inside(f, "file", resolution.file)
        if resolution.sha256 is None or resolution.bytes is None:
            f.fail("file", "comes without its sha256 and bytes")
        if resolution.resent == 0:
            f.fail("file", "is given, but no user is left to send")
    return resolution


def _relative_file(f: JsonFields) -> str:
    name = f.get_str("file")
    _check_inside(f, "file", name)
    return name


def _check_inside(f: JsonFields, key: str, name: str) -> None:
    # The file is opened relative to the run dir: never let a manifest point outside it.
    if not name or name.startswith("/") or ".." in name.split("/"):
        f.fail(key, f"is {name!r}, expected a path inside the run dir")


def _check_consistent(chunk: ChunkRecord, f: JsonFields) -> None:
    """The invariants the tracker's transitions rely on."""
    for number, attempt in enumerate(chunk.attempts, start=1):
        if attempt.number != number:
            f.fail("attempts", f"are numbered {attempt.number} at position {number}")
    running = bool(chunk.attempts) and chunk.attempts[-1].outcome is None
    if running != (chunk.status in ACTIVE_STATES):
        f.fail("status", f"is {chunk.status!r}, which does not match its last attempt")
    if chunk.status in ("pending", "processing") and chunk.job_id is None:
        f.fail("job_id", f"is missing for a {chunk.status} chunk")
    if any(a.outcome is None for a in chunk.attempts[:-1]):
        f.fail("attempts", "have an unfinished attempt before the last one")
    for resolution in chunk.resolutions:
        if resolution.attempt > len(chunk.attempts):
            f.fail("resolutions", f"settle attempt {resolution.attempt}, which was never made")


def _attempt(f: JsonFields) -> Attempt:
    return Attempt(
        number=f.get_int("number", minimum=1),
        started_at=f.get_str("started_at"),
        job_id=f.get_opt_str("job_id"),
        ended_at=f.get_opt_str("ended_at"),
        outcome=f.get_opt_choice("outcome", ATTEMPT_OUTCOMES),
        detail=f.get_opt_str("detail"),
    )
