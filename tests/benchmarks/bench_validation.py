"""Timing script (not a test): microseconds per user of UserValidator.check and DuplicateFinder.

Run: `.venv/bin/python tests/benchmarks/bench_validation.py [--users N]`. It prints the best of
several rounds (CPU time of this process) next to a bare orjson decode+encode of the same users,
the baseline the chunk pipeline is measured against.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import orjson
from orchestrator.dedupe import DuplicateFinder

from orchestrator.validation import NormaliseOptions, UserValidator


def typical_user(i: int) -> dict[str, object]:
    """The brief's typical valid user: profile fields, two small metadata objects, bcrypt hash."""
    return {
        "email": f"user.{i}@example.com",
        "email_verified": i % 2 == 0,
        "user_id": f"auth0|{i:024x}",
        "name": f"User Number {i}",
        "given_name": "User",
        "family_name": f"Number{i}",
        "nickname": f"user{i}",
        "picture": f"https://s.gravatar.com/avatar/{i:032x}?s=480&r=pg&d=mp",
        "app_metadata": {"plan": "pro", "roles": ["admin", "billing"], "tier": i % 5},
        "user_metadata": {"theme": "dark", "lang": "en", "tz": "Europe/Paris"},
        "password_hash": "$2b$10$" + f"{i:022d}" + "C9hB01.YxRSTcn/ZOOo4j.TW7xCKKFK",
    }


def export_user(i: int) -> dict[str, object]:
    """A user as an Auth0 export gives it: export-only fields to drop, no password."""
    user = typical_user(i)
    del user["password_hash"]
    user.update(
        {
            "created_at": "2023-01-25T17:48:16.647Z",
            "updated_at": "2023-01-25T17:48:16.647Z",
            "identities": [{"provider": "auth0", "user_id": f"{i:024x}", "isSocial": False}],
            "logins_count": 3,
            "last_login": "2024-01-01T00:00:00.000Z",
            "last_ip": "192.0.2.1",
        }
    )
    return user


def best_per_user(run: Callable[[], None], users: int, rounds: int) -> float:
    """Best (least disturbed) wall time of `rounds` runs, in microseconds per user."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best / users * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    n: int = args.users

    lines = [orjson.dumps(typical_user(i)) for i in range(n)]
    export_lines = [orjson.dumps(export_user(i)) for i in range(n)]
    decoded = [orjson.loads(line) for line in lines]
    loads, dumps = orjson.loads, orjson.dumps

    def bare() -> None:
        for line in lines:
            dumps(loads(line))

    def validate_only() -> float:
        # Fresh copies each round (check strips the auth0| prefix in place), made outside the clock.
        best = float("inf")
        for _ in range(args.rounds):
            users = copy.deepcopy(decoded)
            check = UserValidator(NormaliseOptions()).check
            start = time.process_time()
            for user in users:
                check(user)
            best = min(best, time.process_time() - start)
        return best / n * 1e6

    def pipeline(
        source: list[bytes], options: NormaliseOptions, *, dedupe: bool = True
    ) -> Callable[[], None]:
        def run() -> None:
            check = UserValidator(options).check
            finder = DuplicateFinder(expected=n)
            for line in source:
                user = loads(line)
                if check(user):
                    continue
                if dedupe:
                    if finder.check(user) is not None:
                        continue
                    finder.remember(user)
                dumps(user)

        return run

    def dedupe_only() -> None:
        finder = DuplicateFinder(expected=n)
        for user in decoded:
            if finder.check(user) is None:
                finder.remember(user)

    figures = {
        "orjson decode+encode (baseline)": best_per_user(bare, n, args.rounds),
        "UserValidator.check alone (users not in cache)": validate_only(),
        "DuplicateFinder.check+remember alone": best_per_user(dedupe_only, n, args.rounds),
        "decode+check+encode": best_per_user(
            pipeline(lines, NormaliseOptions(), dedupe=False), n, args.rounds
        ),
        "decode+check+dedupe+encode": best_per_user(
            pipeline(lines, NormaliseOptions()), n, args.rounds
        ),
        "same, Auth0 export + --drop-unknown-fields": best_per_user(
            pipeline(export_lines, NormaliseOptions(drop_unknown_fields=True)), n, args.rounds
        ),
    }
    for label, micros in figures.items():
        print(f"{label:48s} {micros:6.2f} us/user")


if __name__ == "__main__":
    main()
