"""Tonight's classification: each user of the export is new, changed, unchanged or rejected.

The export is planned by the one planner (the same normalisation, rules, duplicates and size limit
as `run`); instead of being packed, each accepted user is fingerprinted (its canonical JSON, keys
sorted) and compared with the state in rounds of indexed lookups. New and changed users are written
as NDJSON for the night's run, with a pending row each in the state. Users of the state the export
no longer has ("missing") are left unmarked in the `seen` bitmap. Never talks to the API.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Final

import orjson

from orchestrator.plan.planner import ChunkLayout, Planner, plan_records
from orchestrator.settings import PlanSettings
from orchestrator.sources.reader import ExportReader, estimate_users
from orchestrator.sync.state import SyncState

#: Users classified per round of lookups: enough to amortise each statement, small in memory.
ROUND_USERS: Final = 2_000
FINGERPRINT_BYTES: Final = 16
#: The planner's encoding for a sync: keys sorted, so key order makes no difference.
CANONICAL: Final = orjson.OPT_SORT_KEYS


@dataclass(slots=True)
class DiffCounts:
    """Tonight's classification."""

    users_read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    missing: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    dropped_fields: Counter[str] = field(default_factory=Counter)

    @property
    def to_send(self) -> int:
        return self.new + self.changed

    def as_json(self) -> dict[str, object]:
        return {
            "users_read": self.users_read,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "rejected_locally": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "dropped_fields": dict(self.dropped_fields),
        }


@dataclass(slots=True)
class DiffResult:
    """The classification, the slots of state users seen tonight, and the next free slot."""

    counts: DiffCounts
    seen: bytearray
    next_slot: int


def user_key(user: Mapping[str, object]) -> str | None:
    """The state's key of a normalised user: its user_id, else its lower-cased email.

    The same function reads the users echoed by the job errors endpoint, so a failed user is
    matched to the pending row it came from.
    """
    user_id = user.get("user_id")
    if isinstance(user_id, str) and user_id:
        return user_id
    email = user.get("email")
    if isinstance(email, str) and email:
        return email.lower()
    return None


def canonical_json(user: Mapping[str, object]) -> bytes:
    """The user's canonical JSON: compact, keys sorted at every level. It is also what is sent."""
    return orjson.dumps(user, option=CANONICAL)


def fingerprint_of(canonical: bytes) -> bytes:
    """BLAKE2b-128 of a canonical JSON text."""
    hasher = _BLAKE2B_16.copy()
    hasher.update(canonical)
    return hasher.digest()


def user_fingerprint(user: Mapping[str, object]) -> bytes:
    """BLAKE2b-128 of the user's canonical JSON: equal content, equal fingerprint."""
    return fingerprint_of(canonical_json(user))


# Copying a configured hasher costs about half of constructing one (keyword parsing dominates).
_BLAKE2B_16: Final = hashlib.blake2b(digest_size=FINGERPRINT_BYTES)

#: An accepted user on its way to classification: (key, fingerprint, canonical JSON). A plain
#: tuple, not a dataclass: one is built per user of a 10-million-user export.
_Accepted = tuple[str, bytes, bytes]


class _Classifier:
    """Takes the planner's accepted users and classifies them against the state, a round at a time.

    It is the planner's consumer (in place of the packer): `take` gets each accepted user, and
    `refused` each user the planner rejected, whose key still counts as present in the export.
    """

    def __init__(
        self,
        state: SyncState,
        send: IO[bytes] | None,
        record: bool,
        counts: DiffCounts,
        progress: Callable[[DiffCounts], None] | None,
    ) -> None:
        self._state = state
        self._send = send
        self._record = record
        self._progress = progress
        self.counts = counts
        self.next_slot = state.next_slot
        self.seen = bytearray(self.next_slot)
        self._line = 0  # the night's input is NDJSON: a user's position is its 1-based line
        self._accepted: list[_Accepted] = []
        self._rejected_keys: list[str] = []

    def take(self, position: int, user: dict[str, object], encoded: bytes) -> None:
        key = user_key(user)
        assert key is not None  # a valid user has an email
        self._accepted.append((key, fingerprint_of(encoded), encoded))
        if len(self._accepted) >= ROUND_USERS:
            self._classify()

    def refused(self, user: object) -> None:
        if isinstance(user, dict):
            key = user_key(user)
            if key is not None:
                self._rejected_keys.append(key)

    def finish(self) -> None:
        self._classify()

    def _classify(self) -> None:
        accepted, rejected_keys = self._accepted, self._rejected_keys
        self._accepted, self._rejected_keys = [], []
        found = self._state.lookup([*(a[0] for a in accepted), *rejected_keys])
        seen = self.seen
        counts = self.counts
        pending: list[tuple[int, str, bytes, int]] = []
        out: list[bytes] = []
        for key, fingerprint, encoded in accepted:
            known = found.get(key)
            if known is None:
                counts.new += 1
                slot = self.next_slot
                self.next_slot += 1
            else:
                seen[known.slot] = 1
                if known.fingerprint == fingerprint:
                    counts.unchanged += 1
                    continue
                counts.changed += 1
                slot = known.slot
            self._line += 1
            pending.append((self._line, key, fingerprint, slot))
            out.append(encoded)
        for key in rejected_keys:
            # Present in the export (if not importable tonight): not "missing".
            known = found.get(key)
            if known is not None:
                seen[known.slot] = 1
        if self._send is not None and out:
            self._send.write(b"\n".join(out) + b"\n")
        if self._record and pending:
            self._state.add_pending(pending)
        if self._progress is not None:
            self._progress(counts)


def diff_export(
    reader: ExportReader,
    state: SyncState,
    settings: PlanSettings,
    *,
    send: IO[bytes] | None,
    rejects: IO[bytes] | None,
    record_pending: bool,
    progress: Callable[[DiffCounts], None] | None = None,
) -> DiffResult:
    """Classify every user of the export against the state.

    Args:
        reader: the export (its InputError propagates: a malformed export stops the diff).
        state: the sync state; read, and given pending rows when `record_pending`.
        settings: the normalisation switches and request limit, as for `run`.
        send: where the new and changed users go, one compact JSON object per line (None: count only).
        rejects: where users refused locally go, as in `run`'s rejects.ndjson (None: count only).
        record_pending: store a pending row per user to send (False for a dry run: the state is not
            touched).
        progress: called with the counts so far after each round of lookups.

    Returns:
        The counts (missing not yet counted), the bitmap of state slots seen and the next free slot.
    """
    counts = DiffCounts()
    classifier = _Classifier(state, send, record_pending, counts, progress)
    # Chunks are planned later from the night's input: only the size limit matters here.
    layout = ChunkLayout(settings.max_request_bytes, settings.external_id_prefix or "sync")
    planner = Planner(
        settings,
        layout,
        classifier,
        rejects=rejects,
        where=reader.where,
        expected_users=estimate_users(reader.path),
        encode_options=CANONICAL,
    )
    stats = plan_records(reader.batches(), planner)
    counts.users_read = stats.users_read
    counts.rejected = stats.users_rejected
    counts.rejected_by_reason.update(stats.rejected_by_reason)
    counts.dropped_fields.update(stats.dropped_fields)
    return DiffResult(counts, classifier.seen, classifier.next_slot)
