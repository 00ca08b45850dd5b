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

from podtier.certs import cli as certs_cli
from podtier.webhook import __version__
from podtier.webhook.commands import explain, pods, policy, profiles, report, serve
from podtier.webhook.commands.args import USAGE_ERROR, CliError
from podtier.webhook.documents import DocumentError
from podtier.webhook.policy import PolicyError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podtier",
        description="Admission webhook that sizes and places Apache Airflow worker pods.",
    )
    parser.add_argument("--version", action="version", version=f"podtier {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (serve, explain, pods, profiles, report, policy):
        command.add_command(sub)
    certs_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
