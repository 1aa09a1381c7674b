"""The tracker: every transition, the journal, compaction, replay after crashes (real ones too)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from orchestrator.errors import RunDirError
from orchestrator.rundir.claim import claim_new
from orchestrator.rundir.layout import JOURNAL, MANIFEST
from orchestrator.rundir.manifest import Manifest, Resolution
from orchestrator.rundir.tracker import Tracker, load_manifest
from tests.rundir.test_manifest import make_manifest, resolution

REPO = Path(__file__).resolve().parents[2]
SUMMARY = {"total": 1, "inserted": 1, "updated": 0, "failed": 0}
#: Long enough that no automatic compaction happens during a test.
NEVER = 3600.0

Step = tuple[str, tuple[object, ...]]


def scenario(chunks: int) -> list[Step]:
    """A deterministic run using every transition; each step writes exactly one journal line."""
    steps: list[Step] = []
    for i in range(chunks):
        job = f"job_{i}"
        match i % 4:
            case 0:
                steps += [
                    ("submitting", (i,)),
                    ("submitted", (i, job)),
                    ("progressed", (i, "processing")),
                    ("completed", (i, {**SUMMARY, "failed": 1})),
                    ("errors_saved", (i,)),
                ]
            case 1:
                steps += [
                    ("submitting", (i,)),
                    ("ambiguous", (i,)),
                    ("submitting", (i,)),
                    ("submitted", (i, job)),
                    ("completed", (i, SUMMARY)),
                ]
            case 2:
                steps += [
                    ("submitting", (i,)),
                    ("submitted", (i, job + "a")),
                    ("attempt_failed", (i, "failed", "boom")),
                    ("submitting", (i,)),
                    ("submitted", (i, job + "b")),
                    ("progressed", (i, "processing")),
                    ("attempt_failed", (i, "expired", None)),
                    ("chunk_failed", (i, "2 jobs ended without completing")),
                ]
            case _:
                steps += [("submitting", (i,)), ("chunk_failed", (i, "413 too large"))]
    steps.append(("reset_failed", ()))
    for i in (i for i in range(chunks) if i % 4 in (2, 3)):  # the failed ones, reset
        steps += [
            ("submitting", (i,)),
            ("submitted", (i, f"job_{i}r")),
            ("completed", (i, SUMMARY)),
        ]
    return steps


def play(tracker: Tracker, step: Step) -> None:
    method, args = step
    getattr(tracker, method)(*args)


def state_of(manifest: Manifest) -> list[object]:
    """Everything a run's decisions depend on (times excluded: they differ between runs)."""
    return [
        (
            c.index,
            c.status,
            c.job_id,
            [(a.number, a.job_id, a.outcome, a.detail, a.ended_at is None) for a in c.attempts],
            c.summary,
            c.errors_saved,
            c.ambiguous,
            c.failure,
        )
        for c in manifest.chunks
    ] + [manifest.settings]


def journal_lines(run_dir: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (run_dir / JOURNAL).read_bytes().splitlines()]


def snapshot(run_dir: Path, to: Path) -> Path:
    """What a crash at this instant leaves on disk (a SIGKILL keeps written data)."""
    to.mkdir()
    for name in (MANIFEST, JOURNAL):
        shutil.copyfile(run_dir / name, to / name)
    return to


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def new_tracker(run_dir: Path, chunks: int = 4, interval: float = NEVER) -> Tracker:
    journal = claim_new(run_dir)
    return Tracker.create(run_dir, make_manifest(chunks), journal, compact_interval=interval)


class TestCreateOpen:
    def test_create_writes_private_manifest_and_empty_journal(self, run_dir: Path) -> None:
        old = os.umask(0)
        try:
            with new_tracker(run_dir):
                pass
        finally:
            os.umask(old)
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        for name in (MANIFEST, JOURNAL):
            assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600
        assert (run_dir / JOURNAL).read_bytes() == b""
        saved = Manifest.from_json((run_dir / MANIFEST).read_bytes(), path="m")
        assert state_of(saved) == state_of(make_manifest(4))

    def test_create_refuses_an_existing_run(self, run_dir: Path) -> None:
        new_tracker(run_dir).close()
        with pytest.raises(RunDirError, match="already holds a plan"):
            new_tracker(run_dir)

    def test_create_refuses_an_invalid_manifest(self, run_dir: Path) -> None:
        manifest = make_manifest(2)
        manifest.chunks[1].index = 7
        with pytest.raises(ValueError, match=r"'chunks\[1\]\.index' is 7"):
            Tracker.create(run_dir, manifest, claim_new(run_dir))

    def test_open_without_a_run(self, tmp_path: Path) -> None:
        with pytest.raises(RunDirError, match="holds no run"):
            Tracker.open(tmp_path)
        with pytest.raises(RunDirError, match="holds no run"):
            load_manifest(tmp_path / "missing")

    def test_one_process_at_a_time(self, run_dir: Path) -> None:
        with new_tracker(run_dir), pytest.raises(RunDirError, match="in use by another"):
            Tracker.open(run_dir)
        Tracker.open(run_dir).close()  # released on close

    def test_open_tolerates_a_missing_journal(self, run_dir: Path) -> None:
        new_tracker(run_dir).close()
        (run_dir / JOURNAL).unlink()
        with Tracker.open(run_dir) as tracker:
            assert len(tracker.manifest.chunks) == 4

    def test_close_is_idempotent_and_final(self, run_dir: Path) -> None:
        tracker = new_tracker(run_dir)
        tracker.close()
        tracker.close()
        with pytest.raises(RuntimeError, match="closed"):
            tracker.submitting(0)
        with pytest.raises(RuntimeError, match="closed"):
            tracker.compact()


class TestTransitions:
    def test_happy_path(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            attempt = tracker.submitting(1)
            chunk = tracker.chunk(1)
            assert (chunk.status, attempt.number, attempt.outcome) == ("submitting", 1, None)
            assert attempt is chunk.attempts[-1]
            tracker.submitted(1, "job_a")
            assert (chunk.status, chunk.job_id, attempt.job_id) == ("pending", "job_a", "job_a")
            tracker.progressed(1, "processing")
            assert chunk.status == "processing"
            tracker.completed(1, SUMMARY)
            assert (chunk.status, chunk.summary, attempt.outcome) == (
                "completed",
                SUMMARY,
                "completed",
            )
            assert attempt.ended_at is not None
            assert attempt.ended_at >= attempt.started_at
            tracker.errors_saved(1)
            assert chunk.errors_saved
        assert [line["event"] for line in journal_lines(run_dir)] == []  # compacted on close
        assert load_manifest(run_dir).chunks[1] == chunk

    def test_each_transition_appends_one_numbered_line(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.submitting(0)
            tracker.submitted(0, "job_a")
            lines = journal_lines(run_dir)
            assert [(line["seq"], line["event"], line["chunk"]) for line in lines] == [
                (1, "submitting", 0),
                (2, "submitted", 0),
            ]
            assert lines[1]["job_id"] == "job_a"

    def test_progressed_writes_only_a_change(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.submitting(0)
            tracker.submitted(0, "job_a")
            tracker.progressed(0, "pending")
            tracker.progressed(0, "processing")
            tracker.progressed(0, "processing")
            tracker.progressed(0, "pending")  # a report going backwards is ignored
            assert tracker.chunk(0).status == "processing"
            assert len(journal_lines(run_dir)) == 3

    def test_failed_attempt_then_a_new_one(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.submitting(0)
            tracker.submitted(0, "job_a")
            tracker.attempt_failed(0, "expired", "x" * 5000)
            chunk = tracker.chunk(0)
            assert (chunk.status, chunk.job_id) == ("planned", "job_a")
            assert chunk.attempts[0].outcome == "expired"
            assert len(chunk.attempts[0].detail or "") == 1000  # clipped
            second = tracker.submitting(0)
            assert (second.number, chunk.job_id) == (2, None)

    @pytest.mark.parametrize(
        ("before", "outcome", "expected"),
        [
            ([], None, None),
            (["submitting"], None, "rejected"),
            (["submitting", "submitted"], None, "failed"),
            (["submitting", "submitted"], "timeout", "timeout"),
        ],
    )
    def test_chunk_failed(
        self, run_dir: Path, before: list[str], outcome: str | None, expected: str | None
    ) -> None:
        with new_tracker(run_dir) as tracker:
            steps = {"submitting": (0,), "submitted": (0, "job_a")}
            for method in before:
                play(tracker, (method, steps[method]))
            tracker.chunk_failed(0, "given up", outcome=outcome)
            chunk = tracker.chunk(0)
            assert (chunk.status, chunk.failure) == ("failed", "given up")
            assert [a.outcome for a in chunk.attempts] == ([expected] if before else [])

    def test_ambiguous(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.submitting(2)
            tracker.ambiguous(2)
            chunk = tracker.chunk(2)
            assert (chunk.status, chunk.ambiguous, chunk.attempts[0].outcome) == (
                "planned",
                1,
                "unknown",
            )

    def test_withdrawn_takes_the_attempt_back(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.submitting(2)
            tracker.withdrawn(2)
            chunk = tracker.chunk(2)
            assert (chunk.status, chunk.attempts, chunk.ambiguous) == ("planned", [], 0)
        reopened = load_manifest(run_dir).chunks[2]
        assert (reopened.status, reopened.attempts) == ("planned", [])

    def test_reset_failed(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            assert tracker.reset_failed() == 0
            assert journal_lines(run_dir) == []
            for index in (1, 3):
                tracker.chunk_failed(index, "no")
            assert tracker.reset_failed() == 2
            assert [c.status for c in tracker.manifest.chunks] == ["planned"] * 4
            assert tracker.chunk(1).failure is None
            assert journal_lines(run_dir)[-1]["chunks"] == [1, 3]

    def test_errors_saved_twice_writes_once(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            for step in scenario(1)[:5]:
                play(tracker, step)
            tracker.errors_saved(0)
            assert len(journal_lines(run_dir)) == 5

    def test_update_settings(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.update_settings(connection_id="con_123", job_slots=None)  # unchanged
            assert journal_lines(run_dir) == []
            tracker.update_settings(connection_id="con_9", upsert=True, max_attempts=5)
            assert journal_lines(run_dir)[0]["changes"] == {
                "connection_id": "con_9",
                "upsert": True,
                "max_attempts": 5,
            }
        settings = load_manifest(run_dir).settings
        assert (settings.connection_id, settings.upsert, settings.max_attempts) == (
            "con_9",
            True,
            5,
        )
        assert settings.job_slots == 0  # auto, unchanged


ILLEGAL: list[tuple[list[Step], Step]] = [
    ([], ("submitted", (0, "job"))),
    ([], ("progressed", (0, "processing"))),
    ([], ("completed", (0, SUMMARY))),
    ([], ("attempt_failed", (0, "failed", None))),
    ([], ("errors_saved", (0,))),
    ([], ("ambiguous", (0,))),
    ([("submitting", (0,))], ("submitting", (0,))),
    ([("submitting", (0,))], ("completed", (0, SUMMARY))),
    ([("submitting", (0,))], ("progressed", (0, "processing"))),
    ([("submitting", (0,)), ("submitted", (0, "j"))], ("ambiguous", (0,))),
    ([("submitting", (0,)), ("submitted", (0, "j"))], ("submitted", (0, "k"))),
    ([("submitting", (0,)), ("submitted", (0, "j"))], ("progressed", (0, "completed"))),
    ([("submitting", (0,)), ("submitted", (0, "j"))], ("attempt_failed", (0, "completed", None))),
    ([("submitting", (0,)), ("submitted", (0, "j"))], ("attempt_failed", (0, "bad", None))),
    ([("chunk_failed", (0, "no"))], ("chunk_failed", (0, "again"))),
    ([("chunk_failed", (0, "no"))], ("submitting", (0,))),
]


class TestIllegal:
    @pytest.mark.parametrize(("setup", "illegal"), ILLEGAL)
    def test_raises_and_writes_nothing(
        self, run_dir: Path, setup: list[Step], illegal: Step
    ) -> None:
        with new_tracker(run_dir) as tracker:
            for step in setup:
                play(tracker, step)
            before = (run_dir / JOURNAL).read_bytes(), state_of(tracker.manifest)
            with pytest.raises(RuntimeError, match="illegal tracker transition"):
                play(tracker, illegal)
            assert ((run_dir / JOURNAL).read_bytes(), state_of(tracker.manifest)) == before

    def test_invalid_setting(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            with pytest.raises(RuntimeError, match=r"'changes\.job_slots' is -1"):
                tracker.update_settings(job_slots=-1)
            assert journal_lines(run_dir) == []

    def test_illegal_transition_message(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker, pytest.raises(RuntimeError) as caught:
            tracker.completed(3, SUMMARY)
        assert str(caught.value) == (
            "illegal tracker transition: chunk 3 is planned: 'completed' is allowed only from "
            "pending, processing"
        )

    @pytest.mark.parametrize("method", ["submitting", "progressed", "errors_saved", "ambiguous"])
    def test_unknown_chunk(self, run_dir: Path, method: str) -> None:
        with new_tracker(run_dir) as tracker, pytest.raises(IndexError, match="no chunk 4"):
            getattr(tracker, method)(*((4, "processing") if method == "progressed" else (4,)))


class TestCompaction:
    def test_compact_folds_the_journal_into_the_manifest(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            for step in scenario(4)[:7]:
                play(tracker, step)
            tracker.compact()
            assert (run_dir / JOURNAL).read_bytes() == b""
            on_disk = Manifest.from_json((run_dir / MANIFEST).read_bytes(), path="m")
            assert on_disk.journal_seq == 7
            assert state_of(on_disk) == state_of(tracker.manifest)
            tracker.submitting(3)
            assert journal_lines(run_dir)[0]["seq"] == 8

    def test_automatic_compaction(self, run_dir: Path) -> None:
        with new_tracker(run_dir, interval=0.0) as tracker:
            tracker.submitting(0)
            assert (run_dir / JOURNAL).read_bytes() == b""
            on_disk = Manifest.from_json((run_dir / MANIFEST).read_bytes(), path="m")
            assert on_disk.chunks[0].status == "submitting"

    def test_no_compaction_before_the_interval(self, run_dir: Path) -> None:
        with new_tracker(run_dir, interval=NEVER) as tracker:
            tracker.submitting(0)
            assert len(journal_lines(run_dir)) == 1

    def test_close_without_changes_rewrites_nothing(self, run_dir: Path) -> None:
        new_tracker(run_dir).close()
        tracker = Tracker.open(run_dir)
        written = (run_dir / MANIFEST).stat().st_mtime_ns
        time.sleep(0.01)
        tracker.close()
        assert (run_dir / MANIFEST).stat().st_mtime_ns == written


class TestReplay:
    def test_abandoned_tracker_reopens_to_the_same_state(
        self, run_dir: Path, tmp_path: Path
    ) -> None:
        with new_tracker(run_dir, chunks=8) as tracker:
            for number, step in enumerate(scenario(8), start=1):
                play(tracker, step)
                if number == 20:
                    tracker.compact()  # part of the state in the manifest, part in the journal
            crashed = snapshot(run_dir, tmp_path / "crashed")
            live = state_of(tracker.manifest)
        assert state_of(load_manifest(crashed)) == live
        with Tracker.open(crashed) as reopened:
            assert state_of(reopened.manifest) == live
            assert reopened.manifest.journal_seq == len(scenario(8))
        assert (crashed / JOURNAL).read_bytes() == b""

    def test_torn_last_line_is_ignored_at_every_byte(self, run_dir: Path, tmp_path: Path) -> None:
        with new_tracker(run_dir) as tracker:
            steps = scenario(4)[:6]
            for step in steps[:-1]:
                play(tracker, step)
            before = state_of(tracker.manifest)
            start = len((run_dir / JOURNAL).read_bytes())
            play(tracker, steps[-1])
            after = state_of(tracker.manifest)
            journal = (run_dir / JOURNAL).read_bytes()
            crashed = snapshot(run_dir, tmp_path / "crashed")
        for end in range(start, len(journal) + 1):
            (crashed / JOURNAL).write_bytes(journal[:end])
            expected = after if end == len(journal) else before
            assert state_of(load_manifest(crashed)) == expected, end
        (crashed / JOURNAL).write_bytes(journal[: start + 10])
        with Tracker.open(crashed) as reopened:  # then appending after the torn line is safe
            assert state_of(reopened.manifest) == before
            play(reopened, steps[-1])
        assert state_of(load_manifest(crashed)) == after

    def test_undecodable_last_line_is_ignored(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.submitting(0)
            expected = state_of(tracker.manifest)
            with open(run_dir / JOURNAL, "ab") as journal:
                journal.write(b"\x00\x00\x00\n")  # what a power loss can leave
            assert state_of(load_manifest(run_dir)) == expected

    def test_crash_between_rename_and_truncate(self, run_dir: Path, tmp_path: Path) -> None:
        with new_tracker(run_dir) as tracker:
            for step in scenario(4)[:8]:  # includes an ambiguous: replaying it twice would show
                play(tracker, step)
            stale = (run_dir / JOURNAL).read_bytes()
            tracker.compact()
            live = state_of(tracker.manifest)
            crashed = snapshot(run_dir, tmp_path / "crashed")
            play(tracker, scenario(4)[8])
            newer = (run_dir / JOURNAL).read_bytes()
            live_after = state_of(tracker.manifest)
        (crashed / JOURNAL).write_bytes(stale)  # the new manifest, the journal not yet truncated
        assert state_of(load_manifest(crashed)) == live
        (crashed / JOURNAL).write_bytes(stale + newer)  # the truncate failed; appends went on
        assert state_of(load_manifest(crashed)) == live_after
        with Tracker.open(crashed) as reopened:
            assert state_of(reopened.manifest) == live_after
            assert reopened.chunk(1).ambiguous == 1

    def _damaged(self, run_dir: Path, edit: Callable[[list[bytes]], list[bytes]]) -> Path:
        """A crashed copy of a run whose journal lines went through `edit`."""
        with new_tracker(run_dir) as tracker:
            for step in scenario(4)[:6]:
                play(tracker, step)
            crashed = snapshot(run_dir, run_dir.parent / "crashed")
        lines = (crashed / JOURNAL).read_bytes().splitlines(keepends=True)
        (crashed / JOURNAL).write_bytes(b"".join(edit(lines)))
        return crashed

    def test_corrupt_middle_line_is_refused(self, run_dir: Path) -> None:
        crashed = self._damaged(
            run_dir, lambda lines: [*lines[:2], lines[2][:10] + b"\n", *lines[3:]]
        )
        with pytest.raises(RunDirError) as caught:
            Tracker.open(crashed)
        assert str(caught.value) == (
            f"{crashed / JOURNAL} line 3 is damaged (it is not valid JSON); the run's state "
            "cannot be trusted: start a new run dir (users already imported would be sent again)"
        )

    @pytest.mark.parametrize(
        ("edit", "expected"),
        [
            (lambda lines: lines[:1] + lines[2:], "has seq 3 where 2 was expected"),
            (lambda lines: lines[1:], "has seq 2 where 1 was expected"),
            (
                lambda lines: [lines[0], b'{"seq":2,"event":"completed","chunk":3,"summary":{}}\n'],
                "chunk 3 is planned: 'completed' is allowed only from",
            ),
            (
                lambda lines: [lines[0], b'{"seq":2,"event":"submitted","chunk":0}\n'],
                "missing 'job_id'",
            ),
            (lambda lines: [b'{"seq": 1, "event": "nap"}\n'], "'event' is 'nap', not a known"),
            (lambda lines: [b'{"seq": 1, "event": "errors_saved", "chunk": 9}\n'], "plan has 4"),
            (lambda lines: [b"[1]\n", b"\n"], "the top level is not an object"),
        ],
    )
    def test_inconsistent_journal_is_refused(
        self, run_dir: Path, edit: Callable[[list[bytes]], list[bytes]], expected: str
    ) -> None:
        crashed = self._damaged(run_dir, edit)
        with pytest.raises(RunDirError, match=r"journal\.ndjson line \d+ is damaged") as caught:
            load_manifest(crashed)
        assert expected in str(caught.value)

    def test_load_manifest_writes_nothing(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.submitting(0)
            files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.iterdir()}
            assert load_manifest(run_dir).chunks[0].status == "submitting"
            assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run_dir.iterdir()} == files


class TestFailures:
    def test_a_failed_append_stops_the_tracker_until_compacted(self, run_dir: Path) -> None:
        tracker = new_tracker(run_dir)
        real_fd = tracker._fd
        read_only = os.open(run_dir / JOURNAL, os.O_RDONLY)
        tracker._fd = read_only  # every write now fails (EBADF), as a full disk would
        try:
            with pytest.raises(RunDirError, match=r"could not record a transition in .*resume"):
                tracker.submitting(0)
            with pytest.raises(RunDirError, match="could not record"):
                tracker.submitting(1)
            assert tracker.chunk(0).status == "planned"  # not applied: not durable
        finally:
            tracker._fd = real_fd
            os.close(read_only)
        tracker.close()  # compaction drops whatever the failed append left
        assert state_of(load_manifest(run_dir)) == state_of(make_manifest(4))


class TestThreads:
    def test_concurrent_transitions_from_threads(self, run_dir: Path) -> None:
        steps = scenario(8)
        per_chunk: dict[int, list[Step]] = {}
        for step in steps[: steps.index(("reset_failed", ()))]:
            index = step[1][0]
            assert isinstance(index, int)
            per_chunk.setdefault(index, []).append(step)
        with new_tracker(run_dir, chunks=8, interval=0.005) as tracker:

            def drive(index: int) -> None:
                for step in per_chunk[index]:
                    play(tracker, step)

            with ThreadPoolExecutor(max_workers=8) as pool:
                for done in [pool.submit(drive, index) for index in range(8)]:
                    done.result()  # re-raises a thread's exception here
            live = state_of(tracker.manifest)
        reopened = load_manifest(run_dir)
        assert state_of(reopened) == live
        assert reopened.journal_seq == sum(len(s) for s in per_chunk.values())


# --- A real crash: a child process recording transitions is SIGKILLed at random moments. ---------

CRASH_CHUNKS = 16

#: The child: replay the steps in argv[3] (JSON) on the run in argv[1], printing each step's
#: number once its call returned. Only orchestrator is imported, to start fast.
CRASH_CHILD = """
import sys, orjson
from pathlib import Path
from orchestrator.rundir.tracker import Tracker
tracker = Tracker.open(Path(sys.argv[1]), compact_interval=float(sys.argv[2]))
print("ready", flush=True)
for number, (method, args) in enumerate(orjson.loads(Path(sys.argv[3]).read_bytes()), start=1):
    getattr(tracker, method)(*args)
    print(number, flush=True)
tracker.close()
"""


def start_child(run_dir: Path, compact_interval: float, steps: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(run_dir), str(compact_interval), str(steps)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    return child


def expected_states(tmp_path: Path) -> list[list[object]]:
    """The state after each prefix of the scenario, computed without crashing."""
    with new_tracker(tmp_path / "reference", chunks=CRASH_CHUNKS) as tracker:
        states = [state_of(tracker.manifest)]
        for step in scenario(CRASH_CHUNKS):
            play(tracker, step)
            states.append(state_of(tracker.manifest))
    return states


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_recorded(tmp_path: Path) -> None:
    states = expected_states(tmp_path)
    total = len(states) - 1
    steps = tmp_path / "steps.json"
    steps.write_bytes(orjson.dumps(scenario(CRASH_CHUNKS)))
    for seed in range(12):
        rng = random.Random(seed)
        run_dir = tmp_path / f"seed{seed}"
        new_tracker(run_dir, chunks=CRASH_CHUNKS).close()
        # Odd seeds compact after every transition, so kills also land inside compactions.
        child = start_child(run_dir, 0.0 if seed % 2 else 0.002, steps)
        assert child.stdout is not None
        # Kill at a random instant inside a random transition (one takes about a millisecond).
        target = rng.randrange(total)
        returned = 0
        while returned < target:
            returned = int(child.stdout.readline())
        time.sleep(rng.uniform(0, 0.002))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        # read(), not communicate(): communicate(timeout=...) reads the pipe directly and would
        # miss lines readline() has already buffered, undercounting the steps that returned.
        rest = child.stdout.read().split()
        child.stdout.close()
        returned += sum(1 for word in rest if word.isdigit())
        with Tracker.open(run_dir) as reopened:
            applied = reopened.manifest.journal_seq
            assert returned <= applied <= returned + 1, (seed, returned, applied)
            assert state_of(reopened.manifest) == states[applied], seed


def three_users(run_dir: Path) -> Tracker:
    """A tracker over one chunk of three users (its file is on disk)."""
    manifest = make_manifest(1)
    body = orjson.dumps([{"email": f"u{i}@example.com"} for i in range(3)])
    chunk = manifest.chunks[0]
    chunk.users, chunk.bytes, chunk.sha256 = 3, len(body), hashlib.sha256(body).hexdigest()
    journal = claim_new(run_dir)
    (run_dir / "chunks").mkdir()
    (run_dir / chunk.file).write_bytes(body)
    return Tracker.create(run_dir, manifest, journal, compact_interval=NEVER)


class TestResolutions:
    def test_a_chunk_whose_users_are_all_there_completes_without_a_job(self, run_dir: Path) -> None:
        with three_users(run_dir) as tracker:
            tracker.submitting(0)
            tracker.ambiguous(0)
            tracker.resolved(0, resolution("unseen_job", 1, looked_up=3, found=3, inserted=3))
            chunk = tracker.chunk(0)
            assert chunk.status == "completed"
            assert chunk.summary == {"total": 3, "inserted": 3, "updated": 0, "failed": 0}
        assert state_of(load_manifest(run_dir)) == state_of(tracker.manifest)

    def test_a_job_for_the_missing_users_completes_the_chunk_with_every_count(
        self, run_dir: Path
    ) -> None:
        with three_users(run_dir) as tracker:
            tracker.submitting(0)
            tracker.submitted(0, "job_a")
            tracker.attempt_failed(0, "lost", "job_a was not found")
            tracker.resolved(
                0,
                resolution(
                    "unseen_job",
                    1,
                    looked_up=3,
                    found=2,
                    inserted=1,
                    updated=1,
                    resent=1,
                    file="chunks/000000.r1.json",
                    sha256="ab" * 32,
                    bytes=30,
                ),
            )
            chunk = tracker.chunk(0)
            assert chunk.status == "planned"
            assert chunk.sending() == ("chunks/000000.r1.json", "ab" * 32, 30, 1)
            tracker.submitting(0)
            tracker.submitted(0, "job_b")
            tracker.completed(0, {"total": 1, "inserted": 0, "updated": 0, "failed": 1})
            assert tracker.chunk(0).summary == {
                "total": 3,
                "inserted": 1,
                "updated": 1,
                "failed": 1,
            }
            checked = resolution("duplicates", 2, looked_up=1, found=1, inserted=1)
            tracker.errors_saved(0, checked)
            assert tracker.chunk(0).summary == {
                "total": 3,
                "inserted": 2,
                "updated": 1,
                "failed": 0,
            }
        replayed = load_manifest(run_dir)  # the journal alone gives the same state
        assert state_of(replayed) == state_of(tracker.manifest)
        assert replayed.chunks[0].resolutions == tracker.manifest.chunks[0].resolutions

    @pytest.mark.parametrize(
        ("before", "given", "problem"),
        [
            ([], resolution("unseen_job", 1), "settles no unknown outcome"),
            (["failed"], resolution("unseen_job", 1), "settles no unknown outcome"),
            (["unknown"], resolution("unseen_job", 2), "does not settle the chunk's last"),
            (
                ["unknown"],
                resolution("unseen_job", 1, looked_up=2, found=2, inserted=2),
                "does not account for the 3 users",
            ),
            (
                ["unknown"],
                resolution("unseen_job", 1, looked_up=2, found=2, inserted=2, resent=1),
                "without a file of their own",
            ),
        ],
    )
    def test_a_resolution_that_settles_nothing_is_illegal(
        self, run_dir: Path, before: list[str], given: Resolution, problem: str
    ) -> None:
        with three_users(run_dir) as tracker:
            for outcome in before:
                tracker.submitting(0)
                if outcome == "unknown":
                    tracker.ambiguous(0)
                else:
                    tracker.submitted(0, "job_x")
                    tracker.attempt_failed(0, outcome, None)
            with pytest.raises(RuntimeError, match=problem):
                tracker.resolved(0, given)

    def test_a_resolution_is_recorded_once(self, run_dir: Path) -> None:
        with three_users(run_dir) as tracker:
            tracker.submitting(0)
            tracker.ambiguous(0)
            settled = resolution("unseen_job", 1, looked_up=1, found=0, inserted=0, resent=3)
            tracker.resolved(0, settled)
            with pytest.raises(RuntimeError, match="settles no unknown outcome"):
                tracker.resolved(0, settled)

    def test_the_tenant_is_recorded_once_and_another_one_refused(self, run_dir: Path) -> None:
        with new_tracker(run_dir) as tracker:
            tracker.record_tenant("https://a.auth0.com/api/v2/", "https://a.auth0.com")
            tracker.record_tenant("https://a.auth0.com/api/v2/", "https://a.auth0.com")
            assert len(journal_lines(run_dir)) == 1
            tracker.record_tenant("https://a.auth0.com/api/v2/", "http://127.0.0.1:9")
            with pytest.raises(RuntimeError, match="but the run sends to"):
                tracker.record_tenant("https://b.auth0.com/api/v2/", "https://b.auth0.com")
        tenant = load_manifest(run_dir).tenant
        assert tenant is not None
        assert (tenant.audience, tenant.base_url) == (
            "https://a.auth0.com/api/v2/",
            "http://127.0.0.1:9",
        )
