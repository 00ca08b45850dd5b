"""podtier's command line: `serve`, `explain`, `pods`, `profiles`, `report`, `policy
lint|test`, `certs ...`.

One module per command; each adds its parser and sets `func`, the function that runs it.
Every error a user can cause is one line naming the file, field or flag and the value, and exit
code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from podtier.webhook import __version__
from podtier.webhook.commands.args import USAGE_ERROR, CliError
from podtier.webhook.documents import DocumentError
from podtier.webhook.policy import PolicyError

# The commands, each by the module that adds it. A run imports only its own command's module:
# the others' imports (cryptography for serve and certs, the report's figures) were ~80 ms of
# every run of `podtier explain` or `podtier pods`.
COMMANDS = {
    "serve": "podtier.webhook.commands.serve",
    "explain": "podtier.webhook.commands.explain",
    "pods": "podtier.webhook.commands.pods",
    "profiles": "podtier.webhook.commands.profiles",
    "report": "podtier.webhook.commands.report",
    "policy": "podtier.webhook.commands.policy",
    "certs": "podtier.certs.cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser: with every command, or only with `command`."""
    parser = argparse.ArgumentParser(
        prog="podtier",
        description="Admission webhook that sizes and places Apache Airflow worker pods.",
    )
    parser.add_argument("--version", action="version", version=f"podtier {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if command in (None, name):
            import_module(module_name).add_command(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command `argv` runs, when it names one (its first word that is not an option)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command(argv)).parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, PolicyError, DocumentError) as err:
        print(f"podtier: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `podtier explain ... | head`
        sys.stderr.close()
        return 0
