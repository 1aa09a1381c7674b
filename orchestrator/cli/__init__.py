"""The command line: arguments in, exit code out. The only code that sees argparse or os.environ.

`main(argv)` builds the parser from the command registry, runs one command, and turns its outcome
or its exception into an exit code in one place (`_guarded`): one clear line per error, a traceback
only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import NoReturn

from orchestrator.cli.commands import COMMANDS
from orchestrator.cli.exit_codes import ExitCode, for_outcome
from orchestrator.cli.options import FLAGS, progress_interval
from orchestrator.cli.output import EventLog
from orchestrator.errors import (
    ConfigError,
    InputError,
    Interrupted,
    OrchestratorError,
    RunDirError,
    SettingsError,
)
from orchestrator.outcomes import Outcome
from orchestrator.version import __version__

PROG = "orchestrator"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; the sandbox's own options only when `command` is "sandbox"
    (importing its server costs every other command a noticeable start-up)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Move very large user exports into Auth0 through bulk-import jobs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = _command(name)
        sub = commands.add_parser(name, help=module.HELP)
        if name != "sandbox" or command == "sandbox":
            module.add_arguments(sub)
    return parser


def _command(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in args_list if arg in COMMANDS), None)
    args = build_parser(command).parse_args(args_list)
    debug = getattr(args, "debug", False)

    def act() -> Outcome:
        log = EventLog.for_terminal(
            log_format=getattr(args, "log_format", None),
            quiet=getattr(args, "quiet", False),
            progress_every=progress_interval(args),
        )
        outcome: Outcome = _command(args.command).main(args, log)
        return outcome

    return _guarded(act, debug=debug)


def _guarded(action: Callable[[], Outcome], *, debug: bool) -> int:
    """The one ladder from results and exceptions to exit codes.

    Errors that prevent a start arrive as ConfigError/InputError/RunDirError (nothing was sent:
    the use cases turn a refusal after sending into RunStopped); any other error of ours means a
    run stopped unfinished.
    """
    try:
        return int(for_outcome(action()))
    except SettingsError as exc:
        flag = FLAGS.get(exc.field, exc.field)
        return _fail(
            ConfigError(f"{flag} {exc.value}: {exc.problem}"), ExitCode.CANNOT_START, debug
        )
    except (ConfigError, InputError, RunDirError) as exc:
        return _fail(exc, ExitCode.CANNOT_START, debug)
    except Interrupted as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except OrchestratorError as exc:
        return _fail(exc, ExitCode.UNFINISHED, debug)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.UNFINISHED)


def _fail(exc: BaseException, code: ExitCode, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exception(exc)
    print(f"{PROG}: error: {exc}", file=sys.stderr)
    return int(code)


def run() -> NoReturn:
    """Console-script entry point.

    SIGPIPE stays ignored, as Python sets it: with its default action, a write to a connection the
    service has just closed would kill the process instead of raising an error the client retries.
    A closed stdout (`| head`) ends quietly all the same: unfinished, and with no traceback.
    """
    try:
        code = main()
    except KeyboardInterrupt:  # before the ladder: while the parser was being built
        print(f"{PROG}: interrupted", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush says nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or int(ExitCode.UNFINISHED)
    sys.exit(code)
