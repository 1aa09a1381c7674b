"""One module per command: `HELP`, `add_arguments(parser)` and `main(args, log)` -> a result.

Command modules import the network and planning code inside `main`, so that `--help` and the
offline commands start quickly.
"""

from __future__ import annotations

from typing import Final

#: Command name -> its module, in the order `--help` lists them.
COMMANDS: Final = {
    "validate": "orchestrator.cli.commands.validate",
    "chunk": "orchestrator.cli.commands.chunk",
    "run": "orchestrator.cli.commands.run",
    "resume": "orchestrator.cli.commands.resume",
    "status": "orchestrator.cli.commands.status",
    "report": "orchestrator.cli.commands.report",
    "check": "orchestrator.cli.commands.check",
    "verify": "orchestrator.cli.commands.verify",
    "sync": "orchestrator.cli.commands.sync",
    "sandbox": "orchestrator.cli.commands.sandbox",
}
