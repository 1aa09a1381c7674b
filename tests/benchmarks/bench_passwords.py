"""Password benchmark: the support hash file's join, and planning with hash conversion, as CLI runs.

1. Join: an Auth0 users export (the generator's `auth0-export` flavour: 92% database users, the rest
   Google and SAML) and a support hash file with one row per database user (its `_id.$oid`, email,
   a bcrypt `passwordHash`), both NDJSON, at
   `PASSWORD_BENCH_USERS` users (default 1,000,000). `orchestrator validate --from auth0-export` runs
   with `--password-hashes` and without, as fresh processes: wall time, peak RSS (target: 200 MB with
   the join), and the join's own throughput (hash rows indexed and users looked up per second of
   the difference).
2. Conversion: a Django dumpdata of the same number of users with `pbkdf2_sha256$` passwords,
   validated with the conversion on (`--from django`) and off (`--without-passwords`): the ratio.

Timings are printed, never asserted; a run fails only if a process fails. BENCH_REPEAT=N (default
3) keeps the fastest of N interleaved runs.
"""

from __future__ import annotations

import base64
import os
import random
import sys
from pathlib import Path
from typing import Final

import orjson

from sample_data.generate import GENERATOR_VERSION, iter_users, write_export
from tests.benchmarks._measure import ChildRun, run_child
from tests.benchmarks.conftest import DATA_DIR
from tests.run_helpers import REPO

USERS = int(os.environ.get("PASSWORD_BENCH_USERS", "1000000"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
TARGET_JOIN_RSS_MB: Final = 200.0
_B64: Final = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _cached(path: Path, make: object) -> Path:
    """`path`, written by `make(partial)` once (renamed only when complete)."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        make(partial)  # type: ignore[operator]
        os.replace(partial, path)
    return path


def _hash_rows(users: Path, target: Path) -> None:
    """One support row per database user of the export (social and enterprise users have no
    password): `_id.$oid` from its user_id, a bcrypt-shaped hash."""
    rng = random.Random(7)
    with users.open("rb") as source, target.open("wb") as out:
        for line in source:
            user = orjson.loads(line)
            if not str(user["user_id"]).startswith("auth0|"):
                continue
            oid = str(user["user_id"]).removeprefix("auth0|")
            digest = "".join(rng.choice(_B64) for _ in range(53))
            row = {
                "_id": {"$oid": oid},
                "email": user["email"],
                "email_verified": False,
                "passwordHash": f"$2b$10${digest}",
                "password_set_date": {"$date": "2024-01-01T00:00:00.000Z"},
                "tenant": "bench",
                "connection": "Username-Password-Authentication",
                "_tmp_is_unique": True,
            }
            out.write(orjson.dumps(row) + b"\n")


def _django_dump(target: Path) -> None:
    """A dumpdata array of USERS users with Django-style pbkdf2_sha256 passwords (random bytes)."""
    rng = random.Random(11)
    with target.open("wb") as out:
        out.write(b"[")
        for i, user in enumerate(iter_users(USERS, seed=3)):
            salt = "".join(rng.choice(_B64[2:]) for _ in range(22))
            key = base64.b64encode(rng.randbytes(32)).decode()
            record = {
                "model": "auth.user",
                "pk": i + 1,
                "fields": {
                    "password": f"pbkdf2_sha256$870000${salt}${key}",
                    "last_login": None,
                    "is_superuser": False,
                    "username": f"user{i}",
                    "first_name": user.get("given_name", ""),
                    "last_name": user.get("family_name", ""),
                    "email": user["email"],
                    "is_staff": False,
                    "is_active": True,
                    "date_joined": "2020-01-01T00:00:00Z",
                    "groups": [],
                    "user_permissions": [],
                },
            }
            out.write((b"," if i else b"") + orjson.dumps(record))
        out.write(b"]")


def _validate(*args: str) -> ChildRun:
    run = run_child(
        [sys.executable, "-m", "orchestrator", "validate", *args, "--log-format", "json"],
        cwd=REPO,
        timeout_s=3600,
    )
    assert run.returncode in (0, 1), run.tail()
    return run


def _fastest(*argvs: tuple[str, ...]) -> list[ChildRun]:
    """The fastest of REPEAT interleaved runs of each command."""
    best: list[ChildRun | None] = [None] * len(argvs)
    for _ in range(REPEAT):
        for i, argv in enumerate(argvs):
            run = _validate(*argv)
            if best[i] is None or run.wall_s < best[i].wall_s:  # type: ignore[union-attr]
                best[i] = run
    return [run for run in best if run is not None]


def _summary(run: ChildRun) -> dict[str, object]:
    for line in reversed(run.stdout.splitlines()):
        event = orjson.loads(line)
        if event.get("event") == "summary":
            return dict(event)
    raise AssertionError("no summary event")


def test_the_join_and_the_conversion() -> None:
    stem = f"passwords-{USERS}-gen{GENERATOR_VERSION}"
    users = _cached(
        DATA_DIR / f"{stem}-auth0-export.ndjson",
        lambda p: write_export(
            p, USERS, fmt="ndjson", gzip=False, pretty=False, seed=5, flavour="auth0-export"
        ),
    )
    hashes = _cached(DATA_DIR / f"{stem}-support-hashes.ndjson", lambda p: _hash_rows(users, p))
    with hashes.open("rb") as rows:
        hash_rows = sum(1 for _ in rows)
    django = _cached(DATA_DIR / f"{stem}-django.json", _django_dump)

    export = (str(users), "--from", "auth0-export")
    joined, bare = _fastest((*export, "--password-hashes", str(hashes)), export)
    summary = _summary(joined)
    source = summary["source"]
    assert isinstance(source, dict)
    matched = source["password_hashes"]["matched"]
    converted, without = _fastest(
        (str(django), "--from", "django"), (str(django), "--from", "django", "--without-passwords")
    )

    join_s = joined.wall_s - bare.wall_s

    def row(name: str, run: ChildRun, base: ChildRun) -> str:
        rss = run.peak_rss_bytes / 1e6
        return f"{name:<44}{run.wall_s:>9.2f}{rss:>13.1f}{run.wall_s / base.wall_s:>8.2f}"

    rate = hash_rows / max(join_s, 1e-9)
    joined_mb = joined.peak_rss_bytes / 1e6
    lines = [
        "",
        f"password benchmark: {USERS:,} users (fastest of {REPEAT} interleaved runs)",
        f"{'run':<44}{'wall s':>9}{'peak RSS MB':>13}{'ratio':>8}",
        row("validate --from auth0-export", bare, bare),
        row("  + --password-hashes (join)", joined, bare),
        row("validate --from django --without-passwords", without, without),
        row("validate --from django (pbkdf2 -> PHC)", converted, without),
        (
            f"join: {matched:,} of {USERS:,} users matched (the {hash_rows:,} database users; the "
            f"others sign in with Google or SAML); {rate:,.0f} hash rows indexed and "
            f"looked up per second of the difference ({join_s:.2f} s); peak RSS with the join "
            f"{joined_mb:.0f} MB (target <= {TARGET_JOIN_RSS_MB:.0f} MB)"
        ),
    ]
    print("\n".join(lines))
    assert matched == hash_rows
