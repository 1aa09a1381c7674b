"""Tonight's classification: each user of the export is new, changed, unchanged or rejected.

Streams the export once, normalises and validates each user exactly as `run` does, fingerprints it
and compares it with the state in batches of indexed lookups. New and changed users are written as
NDJSON (canonical: keys sorted) for the normal planner, with a pending row each in the state. Users of the state the export
no longer has ("missing") are left unmarked in the `seen` bitmap. Never talks to the API.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Final

import orjson

from orchestrator.dedupe import DuplicateFinder
from orchestrator.planner import PlanOptions, Rejection, too_large
from orchestrator.reader import ExportReader, SourceRecord
from orchestrator.sync.state import SyncState
from orchestrator.validation import NormaliseOptions, Problem, UserValidator

#: Users classified per round of lookups: enough to amortise each statement, small in memory.
ROUND_USERS: Final = 2_000
FINGERPRINT_BYTES: Final = 16


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
    return orjson.dumps(user, option=orjson.OPT_SORT_KEYS)


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
    """Classifies rounds of accepted users against the state and routes the ones to send."""

    def __init__(
        self, state: SyncState, send: IO[bytes] | None, record: bool, counts: DiffCounts
    ) -> None:
        self._state = state
        self._send = send
        self._record = record
        self.counts = counts
        self.next_slot = state.next_slot
        self.seen = bytearray(self.next_slot)
        self._line = 0  # the night's input is NDJSON: a user's position is its 1-based line

    def classify(self, accepted: list[_Accepted], rejected_keys: list[str]) -> None:
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


def diff_export(
    reader: ExportReader,
    state: SyncState,
    options: PlanOptions,
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
        options: the normalisation switches and request limit, as for `run`.
        send: where the new and changed users go, one compact JSON object per line (None: count only).
        rejects: where users refused locally go, as in `run`'s rejects.ndjson (None: count only).
        record_pending: store a pending row per user to send (False for a dry run: the state is not
            touched).
        progress: called with the counts so far after each round of lookups.

    Returns:
        The counts (missing not yet counted), the bitmap of state slots seen and the next free slot.
    """
    counts = DiffCounts()
    validator = UserValidator(
        NormaliseOptions(
            keep_user_id_prefix=options.keep_user_id_prefix,
            drop_unknown_fields=options.drop_unknown_fields,
        )
    )
    duplicates = DuplicateFinder()
    classifier = _Classifier(state, send, record_pending, counts)
    alone = min(options.users_budget(0), options.users_budget(1)) - 2  # "[" + user + "]"
    accepted: list[_Accepted] = []
    rejected_keys: list[str] = []

    def reject(record: SourceRecord, problems: list[Problem]) -> None:
        counts.rejected += 1
        counts.rejected_by_reason[problems[0].reason] += 1
        if rejects is not None:
            where = reader.where(record.position)
            rejects.write(Rejection(record.position, where, problems, record.value).to_json())
            rejects.write(b"\n")
        if isinstance(record.value, dict):
            key = user_key(record.value)
            if key is not None:
                rejected_keys.append(key)

    for batch in reader.batches():
        counts.users_read += len(batch)
        for record in batch:
            user = record.value
            problems = validator.check(user)
            if problems:
                reject(record, problems)
                continue
            assert isinstance(user, dict)  # a valid user is an object
            duplicate = duplicates.check(user)
            if duplicate is not None:
                reject(record, [duplicate])
                continue
            encoded = canonical_json(user)
            if len(encoded) > alone:
                reject(record, [too_large(len(encoded), options)])
                continue
            duplicates.remember(user)
            key = user_key(user)
            assert key is not None  # a valid user has an email
            accepted.append((key, fingerprint_of(encoded), encoded))
        if len(accepted) >= ROUND_USERS:
            classifier.classify(accepted, rejected_keys)
            accepted, rejected_keys = [], []
            if progress is not None:
                progress(counts)
    classifier.classify(accepted, rejected_keys)
    counts.dropped_fields.update(validator.dropped_fields)
    return DiffResult(counts, classifier.seen, classifier.next_slot)
