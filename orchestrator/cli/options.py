"""The command line's shared options, and the settings they build: the only place that reads the
parsed arguments and the environment.

Every option's default is the settings field it fills (shown in its help); an option left out leaves
that field at its default. `FLAGS` names the option of each settings field, so that a settings error
is reported as the flag the person typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from orchestrator.app.target import Target
from orchestrator.auth0.credentials import Credentials, LoginClient
from orchestrator.errors import ConfigError
from orchestrator.settings import (
    SOURCE_FORMATS,
    ClientSettings,
    PlanSettings,
    SourceSettings,
    UploadSettings,
)

#: Settings field -> the option that sets it.
FLAGS: Final = {
    "max_request_bytes": "--max-request-bytes",
    "external_id_prefix": "--external-id-prefix",
    "connection_id": "--connection-id",
    "job_slots": "--job-slots",
    "max_attempts": "--max-attempts",
    "format": "--from",
    "only_connection": "--only-connection",
    "max_rps": "--max-rps",
    "sample": "--sample",
    "concurrency": "--concurrency",
}
_CREDENTIALS_HINT: Final = "set AUTH0_TOKEN, or AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET"


def default(settings: type[Any], name: str) -> object:
    """The default of a settings field, for a help text."""
    for item in dataclasses.fields(settings):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
    raise KeyError(name)


# -- argument groups ------------------------------------------------------------------------------


def add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        help="the export, optionally gzipped; - = stdin. Its shape is what --from says "
        "(default: the import format, a JSON array or NDJSON)",
    )


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """What the export is and how its records become users."""
    parser.add_argument(
        "--from",
        dest="source_format",
        choices=SOURCE_FORMATS,
        metavar="FORMAT",
        help="what the export is: " + ", ".join(SOURCE_FORMATS) + " (default import: Auth0's "
        "import format; csv needs --map unless its columns are named like import fields)",
    )
    parser.add_argument(
        "--map",
        type=Path,
        metavar="FILE",
        help="a TOML mapping: [fields] import field = source field or column, [constants] "
        "import field = value; it overrides the format's own mapping",
    )
    parser.add_argument(
        "--password-hashes",
        metavar="FILE",
        help="Auth0 support's password-hash export (NDJSON, gzipped or not), joined to the users "
        "by user_id, else by email (within --only-connection, or the user's connection)",
    )
    passwords = parser.add_mutually_exclusive_group()
    passwords.add_argument(
        "--require-passwords",
        action="store_const",
        const="require",
        dest="passwords",
        help="reject users who would arrive without a usable password hash",
    )
    passwords.add_argument(
        "--allow-missing-passwords",
        action="store_const",
        const="allow",
        dest="passwords",
        help="import users without a usable password hash (they reset it); without this or "
        "--require-passwords, a source that can carry passwords refuses to plan them",
    )
    passwords.add_argument(
        "--without-passwords",
        action="store_const",
        const="without",
        dest="passwords",
        help="import every user without a password (hashes removed; fields that look like "
        "passwords may then be dropped by --drop-unknown-fields); every user resets",
    )
    parser.add_argument(
        "--only-connection",
        metavar="NAME",
        help="with --from auth0-export: import only the users of this database connection "
        "(identities[0].connection); the others are skipped and counted",
    )


def add_plan_options(parser: argparse.ArgumentParser, *, chunking: bool = True) -> None:
    """Planning: what decides the chunk files (the source options among them)."""
    add_source_options(parser)
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        metavar="N",
        help="largest whole request (multipart body) to send "
        f"(default {default(PlanSettings, 'max_request_bytes')}, the service's limit)",
    )
    parser.add_argument(
        "--keep-user-id-prefix",
        action="store_true",
        help="keep a leading 'auth0|' in user_id (by default it is stripped: the import adds it)",
    )
    parser.add_argument(
        "--drop-unknown-fields",
        action="store_true",
        help="drop fields the import schema does not accept instead of rejecting the user "
        "(counted per field; a field that looks like a password is refused, see "
        "--without-passwords)",
    )
    if chunking:
        parser.add_argument(
            "--external-id-prefix",
            metavar="P",
            help="prefix of each job's external_id, P-NNNNNN (default: orch-<random>)",
        )


def add_run_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, required=True, help="directory of the run")


def add_connection(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--connection-id",
        help="target database connection, con_... (default: $AUTH0_CONNECTION_ID)",
    )
    target.add_argument(
        "--connection",
        metavar="NAME",
        help="target database connection by its name, as the dashboard shows it (resolved "
        "through the API: needs read:connections)",
    )


def add_sending_options(parser: argparse.ArgumentParser, *, upsert: bool = True) -> None:
    if upsert:
        parser.add_argument("--upsert", action="store_true", help="update users that already exist")
    parser.add_argument(
        "--send-completion-email",
        action="store_true",
        help="let Auth0 email the tenant owners about every job (default off)",
    )


def add_api_options(parser: argparse.ArgumentParser, *, sending: bool = True) -> None:
    """The tenant and the request budget; with `sending`, the job slots and attempts too."""
    parser.add_argument("--domain", help="tenant domain (default: $AUTH0_DOMAIN)")
    parser.add_argument(
        "--base-url", help="API base URL, overrides https://DOMAIN (default: $AUTH0_BASE_URL)"
    )
    parser.add_argument(
        "--max-rps",
        type=float,
        metavar="R",
        help="request budget per second, every request counted "
        f"(default {default(ClientSettings, 'max_rps'):g})",
    )
    if not sending:
        return
    parser.add_argument(
        "--job-slots",
        type=_job_slots,
        metavar="N|auto",
        help="import jobs to keep running at once (default auto: start at the public-cloud limit "
        "of 2 and use more only when the service shows it allows more)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        metavar="N",
        help="jobs per chunk before it is marked failed "
        f"(default {default(UploadSettings, 'max_attempts')})",
    )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="text for people, json for one JSON object per event (default: text on a terminal, "
        "json otherwise)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary and errors")
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between two progress lines when not on a terminal (default 10)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def count(value: str) -> int:
    """A whole number >= 0 (--verify N)."""
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 0")
    return number


def _job_slots(value: str) -> int:
    """`auto` (0) or a number of job slots (its range is the settings' to check)."""
    if value == "auto":
        return 0
    try:
        slots = int(value)
    except ValueError:
        slots = -1
    if slots < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of slots or 'auto'")
    return slots


# -- settings from the arguments ------------------------------------------------------------------


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named options the person gave (None and absent options are left to the defaults)."""
    return {name: value for name in names if (value := getattr(args, name, None)) is not None}


def plan_settings(args: argparse.Namespace) -> PlanSettings:
    return PlanSettings(
        keep_user_id_prefix=args.keep_user_id_prefix,
        drop_unknown_fields=args.drop_unknown_fields,
        source=source_settings(args),
        **given(args, "max_request_bytes", "external_id_prefix", "passwords"),
    )


def source_settings(args: argparse.Namespace) -> SourceSettings:
    """The source format, the mapping file's fields and constants, and the connection kept."""
    from orchestrator.plan.mapping import read_mapping

    fields, constants = read_mapping(args.map) if args.map is not None else ((), ())
    return SourceSettings(
        format=args.source_format or "import",
        fields=fields,
        constants=constants,
        only_connection=args.only_connection,
        password_hashes=args.password_hashes,
    )


def connection_named(args: argparse.Namespace, environ: Mapping[str, str]) -> bool:
    """Whether a target connection was named at all (by id, by name, or in the environment)."""
    return bool(
        getattr(args, "connection", None)
        or args.connection_id
        or environ.get("AUTH0_CONNECTION_ID", "").strip()
    )


def connection_id(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The target connection's id: given, from the environment, or resolved from its name."""
    name = getattr(args, "connection", None)
    if name:
        from orchestrator.app.connections import connection_id_named

        return connection_id_named(name, target(args, environ))
    value = args.connection_id or environ.get("AUTH0_CONNECTION_ID", "").strip()
    if not value:
        raise ConfigError(
            "no connection: pass --connection NAME or --connection-id con_..., or set "
            "AUTH0_CONNECTION_ID"
        )
    return str(value)


def upload_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> UploadSettings:
    return UploadSettings(
        connection_id=connection_id(args, environ),
        upsert=getattr(args, "upsert", False),
        send_completion_email=getattr(args, "send_completion_email", False),
        **given(args, "job_slots", "max_attempts"),
    )


def client_settings(args: argparse.Namespace) -> ClientSettings:
    return ClientSettings(**given(args, "max_rps"))


def credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> Credentials:
    """The tenant and how to sign in, from the environment (flags may override the tenant).

    Raises:
        ConfigError: a variable is missing or malformed; the message names what to set and
            never contains a secret.
    """
    domain = args.domain or _env(environ, "AUTH0_DOMAIN")
    base_url = args.base_url or _env(environ, "AUTH0_BASE_URL")
    if domain is None and base_url is None:
        raise ConfigError("no Auth0 tenant: set AUTH0_DOMAIN (or AUTH0_BASE_URL for a sandbox)")
    token = _env(environ, "AUTH0_TOKEN")
    client_id = _env(environ, "AUTH0_CLIENT_ID")
    client_secret = _env(environ, "AUTH0_CLIENT_SECRET")
    if token is None:
        if client_id is None and client_secret is None:
            raise ConfigError(f"no Auth0 credentials: {_CREDENTIALS_HINT}")
        if client_id is None or client_secret is None:
            missing = "AUTH0_CLIENT_ID" if client_id is None else "AUTH0_CLIENT_SECRET"
            raise ConfigError(f"{missing} is not set: {_CREDENTIALS_HINT}")
    try:
        return Credentials.for_tenant(
            domain=domain,
            base_url=base_url,
            token=token,
            client_id=client_id,
            client_secret=client_secret,
        )
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("the tenant domain", "AUTH0_DOMAIN")) from None


def login_client(environ: Mapping[str, str]) -> LoginClient:
    """The application test accounts sign in through: AUTH0_LOGIN_CLIENT_ID/SECRET, else the
    tool's own AUTH0_CLIENT_ID/SECRET.

    Raises:
        ConfigError: neither pair is set.
    """
    client_id = _env(environ, "AUTH0_LOGIN_CLIENT_ID") or _env(environ, "AUTH0_CLIENT_ID")
    secret = _env(environ, "AUTH0_LOGIN_CLIENT_SECRET") or _env(environ, "AUTH0_CLIENT_SECRET")
    if client_id is None or secret is None:
        raise ConfigError(
            "no application to sign in through: set AUTH0_LOGIN_CLIENT_ID and "
            "AUTH0_LOGIN_CLIENT_SECRET (an application that allows the Password grant)"
        )
    return LoginClient(client_id, secret)


def target(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Target:
    """The tenant and the client settings of a command that talks to the API."""
    env = os.environ if environ is None else environ
    return Target(credentials(args, env), client_settings(args))


def progress_interval(args: argparse.Namespace) -> float:
    value = float(getattr(args, "progress_interval", 10.0))
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"--progress-interval {value:g}: must be a number of seconds above 0")
    return value


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None
