"""Source-format benchmark: reading + mapping each `--from` format against the import path, on the
same users, and a 1 GB Firebase export streamed in flat memory.

The same `FORMAT_BENCH_USERS` people (default 100,000; the generator's import users without their
passwords, which most sources cannot carry) are written once in the import format (NDJSON) and once
in each source's shape; `orchestrator validate FILE --from FORMAT` runs on each as a fresh process,
interleaved with the import file's run (fastest of BENCH_REPEAT, default 3). Targets: at most 1.5x
the import path for the JSON formats, 3x for CSV. Then a Firebase `auth:export` file of about 1 GB (one
JSON object, compact) is validated: its peak RSS must stay under 120 MB (FORMAT_BENCH_LARGE=0 skips
it). Timings are printed, never asserted; a run fails only if a process fails.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from sample_data.generate import GENERATOR_VERSION, iter_users
from tests.benchmarks._measure import ChildRun, run_child
from tests.benchmarks.conftest import DATA_DIR
from tests.run_helpers import REPO

USERS = int(os.environ.get("FORMAT_BENCH_USERS", "100000"))
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
LARGE = os.environ.get("FORMAT_BENCH_LARGE", "1") != "0"
#: Firebase users in the large file: ~560 bytes each, about 1 GB.
LARGE_USERS: Final = 1_800_000
TARGET_JSON: Final = 1.5
TARGET_CSV: Final = 3.0
TARGET_RSS_MB: Final = 120.0
_DROPPED: Final = ("password_hash", "custom_password_hash", "mfa_factors")

User = dict[str, Any]


def people(count: int) -> Iterator[User]:
    """The generator's import users, without the fields the sources cannot carry."""
    for user in iter_users(count, seed=17):
        for name in _DROPPED:
            user.pop(name, None)
        yield user


# -- one shaper per source: the same person as that source exports it ----------------------------


def firebase(user: User, i: int) -> User:
    return {
        "localId": user.get("user_id", f"fb{i}"),
        "email": user["email"],
        "emailVerified": user.get("email_verified", False),
        "displayName": user.get("name"),
        "photoUrl": user.get("picture"),
        "phoneNumber": user.get("phone_number"),
        "disabled": user.get("blocked", False),
        "customAttributes": orjson.dumps(user.get("app_metadata", {})).decode(),
        "providerUserInfo": [{"providerId": "password", "email": user["email"]}],
        "createdAt": "1600000000000",
        "lastSignedInAt": "1700000000000",
    }


def cognito(user: User, i: int) -> User:
    attributes = {
        "sub": user.get("user_id", f"sub-{i}"),
        "email": user["email"],
        "email_verified": "true" if user.get("email_verified") else "false",
        "given_name": user.get("given_name"),
        "family_name": user.get("family_name"),
        "name": user.get("name"),
        "phone_number": user.get("phone_number"),
        "locale": user.get("user_metadata", {}).get("locale"),
        "custom:plan": user.get("app_metadata", {}).get("plan"),
    }
    return {
        "Username": f"user{i}",
        "Attributes": [{"Name": k, "Value": v} for k, v in attributes.items() if v is not None],
        "UserCreateDate": "2021-01-01T00:00:00.000Z",
        "UserLastModifiedDate": "2022-01-01T00:00:00.000Z",
        "Enabled": not user.get("blocked", False),
        "UserStatus": "CONFIRMED",
    }


def keycloak(user: User, i: int) -> User:
    return {
        "id": user.get("user_id", f"kc-{i}"),
        "createdTimestamp": 1600000000000,
        "username": user.get("username") or f"user{i}",
        "enabled": not user.get("blocked", False),
        "emailVerified": user.get("email_verified", False),
        "firstName": user.get("given_name"),
        "lastName": user.get("family_name"),
        "email": user["email"],
        "attributes": {k: [str(v)] for k, v in user.get("user_metadata", {}).items()},
        "realmRoles": ["default-roles-acme", *user.get("app_metadata", {}).get("roles", [])],
        "notBefore": 0,
        "groups": [],
    }


def django(user: User, i: int) -> User:
    return {
        "model": "auth.user",
        "pk": i + 1,
        "fields": {
            "password": "!unusable",
            "last_login": None,
            "is_superuser": False,
            "username": user.get("username") or f"user{i}",
            "first_name": user.get("given_name", ""),
            "last_name": user.get("family_name", ""),
            "email": user["email"],
            "is_staff": False,
            "is_active": not user.get("blocked", False),
            "date_joined": "2020-01-01T00:00:00Z",
            "groups": [],
            "user_permissions": [],
        },
    }


def supabase(user: User, i: int) -> User:
    phone = user.get("phone_number")
    return {
        "instance_id": "00000000-0000-0000-0000-000000000000",
        "id": user.get("user_id", f"sb-{i}"),
        "aud": "authenticated",
        "role": "authenticated",
        "email": user["email"],
        "encrypted_password": "",
        "email_confirmed_at": "2023-01-02 03:04:05.123456+00"
        if user.get("email_verified")
        else None,
        "phone": phone.removeprefix("+") if isinstance(phone, str) else None,
        "raw_app_meta_data": {"provider": "email", "providers": ["email"]},
        "raw_user_meta_data": user.get("user_metadata", {}),
        "created_at": "2023-01-01 00:00:00+00",
        "banned_until": None,
        "deleted_at": None,
        "is_anonymous": False,
    }


def auth0_export(user: User, i: int) -> User:
    user_id = str(user.get("user_id", f"{i:024x}")).removeprefix("auth0|")
    return {
        **user,
        "user_id": f"auth0|{user_id}",
        "created_at": "2020-10-12T13:15:03.713Z",
        "logins_count": 3,
        "identities": [{"provider": "auth0", "connection": "db", "isSocial": False}],
    }


def spreadsheet(user: User, i: int) -> User:
    return {
        "Email Address": user["email"],
        "Full Name": user.get("name", ""),
        "Verified": "yes" if user.get("email_verified") else "no",
        "Plan": user.get("app_metadata", {}).get("plan", ""),
        "Customer ID": str(user.get("user_id", i)),
    }


SHEET_MAP: Final = """[fields]
email = "Email Address"
name = "Full Name"
email_verified = "Verified"
user_id = "Customer ID"
"app_metadata.plan" = "Plan"
"""


# -- writers ------------------------------------------------------------------------------------


def write_json_member(path: Path, member: str, records: Iterator[User]) -> None:
    with path.open("wb") as out:
        out.write(b'{"kind":"bench","' + member.encode() + b'":[')
        for i, record in enumerate(records):
            out.write((b"," if i else b"") + orjson.dumps(record))
        out.write(b"]}")


def write_array(path: Path, records: Iterator[User]) -> None:
    with path.open("wb") as out:
        out.write(b"[")
        for i, record in enumerate(records):
            out.write((b"," if i else b"") + orjson.dumps(record))
        out.write(b"]")


def write_ndjson(path: Path, records: Iterator[User]) -> None:
    with path.open("wb") as out:
        for record in records:
            out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))


def write_csv(path: Path, records: Iterator[User], *, escape: bool = False) -> None:
    """CSV with a header; `escape` writes Auth0's export escaping (`'` before every string)."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer: Any = None
        for record in records:
            row = {k: _cell(v, escape) for k, v in _flat(record).items()}
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), extrasaction="ignore")
                writer.writeheader()
            writer.writerow(row)


def _flat(record: User) -> User:
    flat: User = {}
    for key, value in record.items():
        if key in ("app_metadata", "user_metadata") and isinstance(value, dict):
            flat.update(
                {f"{key}.{k}": v for k, v in value.items() if not isinstance(v, dict | list)}
            )
        elif key == "identities":
            flat["identities[0].connection"] = value[0]["connection"]
        elif not isinstance(value, dict | list):
            flat[key] = value
    return flat


def _cell(value: object, escape: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}" if escape else value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


Writer = Callable[[Path, Iterator[User]], None]
Shaper = Callable[[User, int], User]
#: name -> (file suffix, --from, shaper, writer, CSV?)
FORMATS: Final[dict[str, tuple[str, str, Shaper, Writer, bool]]] = {
    "auth0-export ndjson": ("ndjson", "auth0-export", auth0_export, write_ndjson, False),
    "auth0-export csv": ("csv", "auth0-export", auth0_export, lambda p, r: write_csv(p, r, escape=True), True),
    "firebase": ("json", "firebase", firebase, lambda p, r: write_json_member(p, "users", r), False),
    "cognito list-users": ("json", "cognito", cognito, lambda p, r: write_json_member(p, "Users", r), False),
    "keycloak realm": ("json", "keycloak", keycloak, lambda p, r: write_json_member(p, "users", r), False),
    "django dumpdata": ("json", "django", django, write_array, False),
    "supabase ndjson": ("ndjson", "supabase", supabase, write_ndjson, False),
    "supabase csv": ("csv", "supabase", supabase, write_csv, True),
    "csv + --map": ("csv", "csv", spreadsheet, write_csv, True),
}  # fmt: skip


def _file(name: str, suffix: str, make: Callable[[Path], None]) -> Path:
    stem = name.replace(" ", "-").replace("+", "").replace("--", "-")
    path = DATA_DIR / f"formats-{USERS}-gen{GENERATOR_VERSION}-{stem}.{suffix}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        make(partial)
        os.replace(partial, path)
    return path


def _validate(path: Path, *args: str) -> ChildRun:
    argv = [sys.executable, "-m", "orchestrator", "validate", str(path), *args]
    run = run_child([*argv, "--log-format", "json"], cwd=REPO, timeout_s=3600)
    assert run.returncode in (0, 1), run.tail()
    return run


def _accepted(run: ChildRun) -> int:
    for line in reversed(run.stdout.splitlines()):
        event = orjson.loads(line)
        if event.get("event") == "summary":
            return int(event["accepted"])
    raise AssertionError(run.tail())


def test_each_format_against_the_import_path() -> None:
    baseline = _file("import", "ndjson", lambda p: write_ndjson(p, people(USERS)))
    mapping = DATA_DIR / "formats-sheet.map.toml"
    mapping.write_text(SHEET_MAP)
    rows = []
    for name, (suffix, source, shape, write, is_csv) in FORMATS.items():

        def make(path: Path, shape: Shaper = shape, write: Writer = write) -> None:
            write(path, (shape(u, i) for i, u in enumerate(people(USERS))))

        path = _file(name, suffix, make)
        args = ["--from", source, "--allow-missing-passwords"]
        if source == "csv":
            args = ["--from", "csv", "--map", str(mapping)]
        best: ChildRun | None = None
        base: ChildRun | None = None
        for _ in range(REPEAT):
            run, plain = _validate(path, *args), _validate(baseline)
            best = run if best is None or run.wall_s < best.wall_s else best
            base = plain if base is None or plain.wall_s < base.wall_s else base
        assert best is not None
        assert base is not None
        rows.append((name, path.stat().st_size, best, base, _accepted(best), is_csv))
    lines = [
        "",
        (
            f"source-format benchmark: {USERS:,} users each (fastest of {REPEAT}, interleaved "
            "with the import file's run)"
        ),
        (
            f"{'--from':<22}{'MB':>8}{'accepted':>10}{'wall s':>9}{'import s':>10}{'ratio':>7}"
            f"{'target':>8}{'RSS MB':>8}"
        ),
    ]
    for name, size, run, base, accepted, is_csv in rows:
        target = TARGET_CSV if is_csv else TARGET_JSON
        ratio = run.wall_s / base.wall_s
        mark = "" if ratio <= target else "  (over)"
        lines.append(
            f"{name:<22}{size / 1e6:>8.1f}{accepted:>10,}{run.wall_s:>9.2f}{base.wall_s:>10.2f}"
            f"{ratio:>7.2f}{target:>8.1f}{run.peak_rss_bytes / 1e6:>8.1f}{mark}"
        )
    print("\n".join(lines))


def test_a_1gb_firebase_export_streams_in_flat_memory() -> None:
    if not LARGE:
        print("\n1 GB Firebase export: skipped (FORMAT_BENCH_LARGE=0)")
        return
    path = DATA_DIR / f"formats-firebase-{LARGE_USERS}-gen{GENERATOR_VERSION}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        shaped = (firebase(u, i) for i, u in enumerate(people(LARGE_USERS)))
        write_json_member(partial, "users", shaped)
        os.replace(partial, path)
    run = _validate(path, "--from", "firebase", "--allow-missing-passwords")
    size = path.stat().st_size
    verdict = "within" if run.peak_rss_bytes / 1e6 <= TARGET_RSS_MB else "OVER"
    print(
        f"\n1 GB Firebase export ({size / 1e9:.2f} GB, {_accepted(run):,} users, one JSON object): "
        f"{run.wall_s:.1f} s, {size / 1e6 / run.wall_s:.0f} MB/s, peak RSS "
        f"{run.peak_rss_bytes / 1e6:.1f} MB ({verdict} the {TARGET_RSS_MB:.0f} MB target)"
    )
