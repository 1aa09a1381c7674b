"""The run-state data model, manifest.json's format and validation, chunk-file checks, fsutil."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from orchestrator.errors import RunDirError
from orchestrator.fsutil import (
    make_private_dir,
    open_private_append,
    utc_now_iso,
    write_private_atomic,
)
from orchestrator.rundir.chunkfiles import verify_chunk_files
from orchestrator.rundir.manifest import (
    MANIFEST_VERSION,
    Attempt,
    ChunkRecord,
    InputInfo,
    Manifest,
    PlanTotals,
    Resolution,
    RunSettings,
    TenantRecord,
)


def run_settings(connection_id: str | None = "con_123", **changes: object) -> RunSettings:
    """The settings a manifest records, as a plain run would."""
    values: dict[str, object] = {
        "connection_id": connection_id,
        "upsert": False,
        "send_completion_email": False,
        "job_slots": 0,
        "max_attempts": 3,
        "max_request_bytes": 512_000,
        "external_id_prefix": "test",
        "keep_user_id_prefix": False,
        "drop_unknown_fields": False,
        **changes,
    }
    return RunSettings(**values)  # type: ignore[arg-type]


def make_manifest(chunks: int, run_dir: Path | None = None) -> Manifest:
    """A plan of `chunks` chunks; with `run_dir`, their files are written there too."""
    records = []
    for index in range(chunks):
        body = orjson.dumps([{"email": f"user{index}@example.com"}])
        file = f"chunks/{index:06d}.json"
        if run_dir is not None:
            write_private_atomic(run_dir / file, body)
        records.append(
            ChunkRecord(
                index=index,
                file=file,
                sha256=hashlib.sha256(body).hexdigest(),
                bytes=len(body),
                users=1,
                first_position=index,
                last_position=index,
                external_id=f"test-{index:06d}",
            )
        )
    return Manifest(
        version=MANIFEST_VERSION,
        run_id="20261127T022404Z-abcdef",
        created_at="2026-11-27T02:24:04.123Z",
        input=InputInfo(path="/data/users.json", bytes=123, sha256="ab" * 32, format="json"),
        settings=run_settings(),
        totals=PlanTotals(users_read=chunks, users_accepted=chunks, chunks=chunks),
        chunks=records,
    )


def busy_manifest() -> Manifest:
    """A manifest using every field: attempts of each kind, summaries, counts."""
    manifest = make_manifest(3)
    manifest.totals.rejected_by_reason = {"invalid_email": 2}
    manifest.totals.dropped_fields = {"logins_count": 7}
    manifest.totals.mean_fill = 0.987
    done, running, failed = manifest.chunks
    done.status, done.job_id = "completed", "job_2"
    done.attempts = [
        Attempt(1, "2026-11-27T02:24:04.123Z", None, "2026-11-27T02:24:05.000Z", "unknown"),
        Attempt(2, "2026-11-27T02:24:06.000Z", "job_2", "2026-11-27T02:25:00.000Z", "completed"),
    ]
    done.summary = {"total": 1, "inserted": 1, "updated": 0, "failed": 0}
    done.errors_saved = True
    done.ambiguous = 1
    running.status, running.job_id = "processing", "job_3"
    running.attempts = [Attempt(1, "2026-11-27T02:24:04.123Z", "job_3")]
    failed.status, failed.failure = "failed", "3 jobs ended without completing"
    failed.attempts = [
        Attempt(1, "2026-11-27T02:24:04.123Z", "job_4", "2026-11-27T02:24:09.000Z", "failed", "x")
    ]
    return manifest


DELETE = object()
#: One running attempt, as manifest.json spells it.
RUNNING = {
    "number": 1,
    "started_at": "t",
    "job_id": None,
    "ended_at": None,
    "outcome": None,
    "detail": None,
}


def mutate(manifest: Manifest, path: tuple[str | int, ...], value: object) -> bytes:
    """manifest.json with the field at `path` set to `value` (or deleted: DELETE)."""
    data = orjson.loads(manifest.to_json())
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return orjson.dumps(data)


@pytest.fixture
def no_umask() -> Iterator[None]:
    """Umask 0: any private mode seen afterwards was set on purpose, not by the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestJson:
    def test_round_trip_keeps_everything(self) -> None:
        manifest = busy_manifest()
        assert Manifest.from_json(manifest.to_json(), path="m.json") == manifest

    def test_format_is_readable_json_with_the_spec_keys(self) -> None:
        data = orjson.loads(busy_manifest().to_json())
        assert list(data) == [
            "version",
            "run_id",
            "created_at",
            "input",
            "settings",
            "totals",
            "chunks",
            "journal_seq",
            "tenant",
        ]
        assert {"index", "file", "sha256", "external_id", "status", "job_id", "attempts"} <= set(
            data["chunks"][0]
        )

    def test_missing_chunks_is_named_with_what_to_do(self) -> None:
        data = mutate(make_manifest(1), ("chunks",), DELETE)
        with pytest.raises(RunDirError) as caught:
            Manifest.from_json(data, path="DIR/manifest.json")
        assert str(caught.value) == (
            "DIR/manifest.json is not a manifest of this tool (missing 'chunks'); "
            "point --run-dir at a run directory or start a new one"
        )

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b"{not json", "not valid JSON"),
            (b"[1, 2]", "the top level is not an object"),
            (b'{"version": 1}', "missing 'run_id'"),
        ],
    )
    def test_not_a_manifest(self, data: bytes, expected: str) -> None:
        with pytest.raises(RunDirError, match=re.escape(expected)):
            Manifest.from_json(data, path="m.json")

    @pytest.mark.parametrize(
        ("path", "value", "expected"),
        [
            (("chunks", 0, "status"), "done", "'chunks[0].status' is 'done', expected one"),
            (("chunks", 0, "bytes"), True, "'chunks[0].bytes' is True, expected an integer"),
            (("chunks", 0, "users"), -1, "'chunks[0].users' is -1"),
            (("chunks", 1, "index"), 5, "'chunks[1].index' is 5, expected 1"),
            (("chunks", 0, "file"), "../../etc/passwd", "expected a path inside"),
            (("chunks", 0, "file"), "/etc/passwd", "expected a path inside"),
            (("settings", "upsert"), "yes", "'settings.upsert' is 'yes', expected true"),
            (("settings", "job_slots"), -1, "'settings.job_slots' is -1"),
            (("totals", "rejected_by_reason"), {"x": "y"}, "integer counts"),
            (("input",), [], "'input' is not an object"),
            (("chunks",), {}, "'chunks' is not a list"),
            (("chunks", 0, "summary"), {"total": 1.5}, "integer counts"),
            (("chunks", 0, "status"), "pending", "does not match its last attempt"),
            (("chunks", 0, "attempts"), [RUNNING], "does not match its last attempt"),
            (("chunks", 0, "attempts"), [{**RUNNING, "number": 2}], "numbered 2 at position 1"),
            (
                ("chunks", 0, "attempts"),
                [{**RUNNING, "outcome": "meh"}],
                "'chunks[0].attempts[0].outcome' is 'meh'",
            ),
            (
                ("chunks", 0, "attempts"),
                [RUNNING, {**RUNNING, "number": 2, "outcome": "failed"}],
                "an unfinished attempt before the last one",
            ),
            (("chunks", 0, "external_id"), DELETE, "missing 'chunks[0].external_id'"),
        ],
    )
    def test_damage_is_named_precisely(
        self, path: tuple[str | int, ...], value: object, expected: str
    ) -> None:
        data = mutate(make_manifest(2), path, value)
        with pytest.raises(RunDirError, match=re.escape(expected)) as caught:
            Manifest.from_json(data, path="m.json")
        assert str(caught.value).startswith("m.json is not a manifest of this tool (")

    def test_active_chunk_needs_a_job_id(self) -> None:
        manifest = make_manifest(1)
        manifest.chunks[0].status = "pending"
        manifest.chunks[0].attempts = [Attempt(1, "t")]
        with pytest.raises(RunDirError, match=r"'chunks\[0\]\.job_id' is missing for a pending"):
            Manifest.from_json(manifest.to_json(), path="m.json")

    def test_unknown_version_is_refused_clearly(self) -> None:
        data = mutate(make_manifest(1), ("version",), 2)
        with pytest.raises(RunDirError) as caught:
            Manifest.from_json(data, path="m.json")
        assert str(caught.value) == (
            "m.json has manifest version 2, this orchestrator reads version 1; use the "
            "orchestrator release that made it, or start a new run dir"
        )


class TestVerifyChunkFiles:
    def test_intact_files_pass(self, tmp_path: Path) -> None:
        verify_chunk_files(tmp_path, make_manifest(3, tmp_path))

    def test_completed_chunks_are_not_needed(self, tmp_path: Path) -> None:
        manifest = make_manifest(2, tmp_path)
        manifest.chunks[0].status = "completed"
        (tmp_path / manifest.chunks[0].file).unlink()
        verify_chunk_files(tmp_path, manifest)

    def test_missing_file(self, tmp_path: Path) -> None:
        manifest = make_manifest(3, tmp_path)
        (tmp_path / "chunks/000001.json").unlink()
        with pytest.raises(RunDirError) as caught:
            verify_chunk_files(tmp_path, manifest)
        assert str(caught.value) == (
            f"chunk file {tmp_path}/chunks/000001.json is missing; the run cannot go on safely: "
            "re-plan the input into a new run dir (orchestrator run INPUT --run-dir NEW_DIR ...)"
        )

    def test_size_mismatch(self, tmp_path: Path) -> None:
        manifest = make_manifest(2, tmp_path)
        (tmp_path / "chunks/000001.json").write_bytes(b"[]")
        with pytest.raises(RunDirError, match=r"000001\.json is 2 bytes, the manifest says \d+"):
            verify_chunk_files(tmp_path, manifest)

    def test_same_size_other_content(self, tmp_path: Path) -> None:
        manifest = make_manifest(2, tmp_path)
        path = tmp_path / "chunks/000000.json"
        path.write_bytes(path.read_bytes().replace(b"user0", b"userX"))
        with pytest.raises(RunDirError) as caught:
            verify_chunk_files(tmp_path, manifest)
        message = str(caught.value)
        assert "chunks/000000.json has changed since planning (its sha256 differs" in message
        assert "re-plan the input into a new run dir" in message


class TestFsutil:
    @pytest.mark.usefixtures("no_umask")
    def test_private_dir_is_0700_parents_are_normal(self, tmp_path: Path) -> None:
        target = tmp_path / "a" / "b" / "run"
        make_private_dir(target)
        assert mode(target) == 0o700
        assert mode(tmp_path / "a") == 0o777  # umask 0: "normally" means the default mode

    def test_existing_dir_is_made_private(self, tmp_path: Path) -> None:
        target = tmp_path / "run"
        target.mkdir(mode=0o755)
        make_private_dir(target)
        assert mode(target) == 0o700

    @pytest.mark.usefixtures("no_umask")
    def test_atomic_write_is_0600_and_replaces(self, tmp_path: Path) -> None:
        target = tmp_path / "report.json"
        target.write_bytes(b"old")
        target.chmod(0o644)
        write_private_atomic(target, b"new")
        assert target.read_bytes() == b"new"
        assert mode(target) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]

    def test_atomic_write_creates_a_missing_parent_privately(self, tmp_path: Path) -> None:
        write_private_atomic(tmp_path / "errors" / "000001.ndjson", b"x\n")
        assert mode(tmp_path / "errors") == 0o700
        assert (tmp_path / "errors" / "000001.ndjson").read_bytes() == b"x\n"

    def test_failed_atomic_write_leaves_no_temp_file(self, tmp_path: Path) -> None:
        (tmp_path / "target").mkdir()  # os.replace cannot put a file over a directory
        with pytest.raises(OSError, match="directory"):
            write_private_atomic(tmp_path / "target", b"data")
        assert [p.name for p in tmp_path.iterdir()] == ["target"]

    @pytest.mark.usefixtures("no_umask")
    def test_append_is_0600_and_appends(self, tmp_path: Path) -> None:
        path = tmp_path / "rejects.ndjson"
        path.write_bytes(b"a\n")
        path.chmod(0o664)
        with open_private_append(path) as file:
            file.write(b"b\n")
        assert path.read_bytes() == b"a\nb\n"
        assert mode(path) == 0o600
        with open_private_append(tmp_path / "new.ndjson", buffering=0) as file:
            file.write(b"c\n")
        assert mode(tmp_path / "new.ndjson") == 0o600

    def test_utc_now_iso_has_milliseconds_and_z(self) -> None:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", utc_now_iso())


def resolution(kind: str, attempt: int, **changes: object) -> Resolution:
    """A resolution with plausible values; `changes` replaces some."""
    values: dict[str, object] = {
        "kind": kind,
        "attempt": attempt,
        "at": "2026-11-27T02:30:00.000Z",
        "since": "2026-11-27T02:24:02.123Z",
        "looked_up": 1,
        "found": 1,
        "inserted": 1,
        "updated": 0,
        "resent": 0,
        **changes,
    }
    return Resolution(**values)  # type: ignore[arg-type]


def unseen(attempt: int, **changes: object) -> Resolution:
    return resolution("unseen_job", attempt, **changes)


class TestBackwardCompatibility:
    def test_a_manifest_written_before_resolutions_and_the_tenant_loads(self) -> None:
        data = orjson.loads(busy_manifest().to_json())
        del data["tenant"]
        for chunk in data["chunks"]:
            del chunk["resolutions"]
        loaded = Manifest.from_json(orjson.dumps(data), path="old.json")
        assert loaded.tenant is None
        assert all(chunk.resolutions == [] for chunk in loaded.chunks)
        assert loaded == busy_manifest()

    def test_resolutions_and_the_tenant_round_trip(self) -> None:
        manifest = busy_manifest()
        manifest.tenant = TenantRecord("https://acme.eu.auth0.com/api/v2/", "https://acme.eu")
        manifest.chunks[0].resolutions = [unseen(1, looked_up=8, found=8, inserted=8, resent=0)]
        assert Manifest.from_json(manifest.to_json(), path="m.json") == manifest

    @pytest.mark.parametrize(
        ("changes", "problem"),
        [
            ({"found": 2}, "more than the 1 looked up"),
            ({"inserted": 0}, "do not add up"),
            ({"attempt": 3}, "settle attempt 3, which was never made"),
            ({"file": "chunks/000000.r1.json", "resent": 1}, "without its sha256"),
            ({"file": "../x.json", "sha256": "ab", "bytes": 2, "resent": 1}, "inside the run dir"),
            ({"kind": "guess"}, "expected one of unseen_job, duplicates"),
        ],
    )
    def test_an_inconsistent_resolution_is_refused(
        self, changes: dict[str, object], problem: str
    ) -> None:
        manifest = busy_manifest()
        manifest.chunks[0].resolutions = [unseen(1)]
        data = orjson.loads(manifest.to_json())
        data["chunks"][0]["resolutions"][0].update(changes)
        with pytest.raises(RunDirError, match=problem):
            Manifest.from_json(orjson.dumps(data), path="m.json")


class TestSending:
    def test_a_chunk_sends_its_own_file_until_a_resolution_narrows_it(self) -> None:
        chunk = make_manifest(1).chunks[0]
        assert chunk.sending() == (chunk.file, chunk.sha256, chunk.bytes, chunk.users)
        chunk.resolutions = [unseen(1, looked_up=1, found=0, inserted=0, resent=1)]
        assert chunk.sending() == (chunk.file, chunk.sha256, chunk.bytes, 1)  # all of it again
        narrowed = unseen(2, file="chunks/000000.r1.json", sha256="cd", bytes=9, resent=1)
        chunk.resolutions.append(narrowed)
        assert chunk.sending() == ("chunks/000000.r1.json", "cd", 9, 1)

    def test_only_an_unsettled_unknown_last_attempt_needs_resolution(self) -> None:
        chunk = make_manifest(1).chunks[0]
        assert not chunk.needs_resolution()
        chunk.attempts = [Attempt(1, "t", None, "t", "unknown")]
        assert chunk.needs_resolution()
        chunk.resolutions = [unseen(1, resent=1, found=0, inserted=0)]
        assert not chunk.needs_resolution()
        chunk.attempts.append(Attempt(2, "t", "job_1", "t", "lost"))
        assert chunk.needs_resolution()
        chunk.attempts[-1].outcome = "failed"
        assert not chunk.needs_resolution()
