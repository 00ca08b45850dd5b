"""`podtier report`: what the tiers cost and waste, as one HTML page, a terminal summary or JSON.

    podtier report [--cluster auto|FILE] [--since DURATION] [--out report.html]
    podtier report --cluster dump.json --output json

The figures are `webhook.report.figures`; docs/report.md says how each is made.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import orjson

from podtier.webhook.cleanup.duration import DurationError, parse_duration
from podtier.webhook.commands.args import CliError, load_policy_paths, policy_arg
from podtier.webhook.policy import Policy
from podtier.webhook.report.figures import Figures, figures
from podtier.webhook.report.source import Observed, SourceError, from_cluster, from_file


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report", help="what the tiers cost and waste: an HTML page with charts, or a summary"
    )
    report.add_argument(
        "--cluster",
        default="auto",
        metavar="auto|FILE",
        help="auto (in-cluster or kubeconfig) or a kubectl get nodes,pods,taskprofiles,"
        "podmetrics -A -o json dump",
    )
    report.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for --cluster auto")
    report.add_argument(
        "--since",
        metavar="DURATION",
        help="only the last DURATION (7d, 24h, 90m) before the report's time; default: all",
    )
    report.add_argument("--out", metavar="FILE", help="write the report as one HTML page here")
    report.add_argument(
        "--output",
        choices=["table", "json"],
        default="table",
        help="table: a summary in the terminal (when no --out); json: the figures on stdout",
    )
    policy_arg(report)
    report.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = load_policy_paths(args.policy)
    since = None
    if args.since is not None:
        try:
            since = parse_duration(args.since)
        except DurationError as err:
            raise CliError(f"--since {err}") from None
    observed = _observe(args.cluster, args.kubeconfig, policy)
    now = observed.latest
    if now is None:
        now = time.time()
        observed.notes.append("the file shows no time at all: the report's time is the clock's")
    result = figures(
        observed.pods,
        observed.metrics,
        observed.profiles,
        policy,
        now=now,
        since=None if since is None else now - since,
        source=observed.source,
        notes=observed.notes,
    )
    if args.out:
        size = write_page(result, args.out)
        if args.output != "json":
            print(f"wrote {args.out} ({size / 1024:,.0f} KB, {result.total.pods:,} pods)")
    if args.output == "json":
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif not args.out:
        from podtier.webhook.report.terminal import render

        render(result)
    return 0


def write_page(result: Figures, out: str) -> int:
    """Draw the charts, write the page to `out`; its size in bytes."""
    try:
        import matplotlib  # noqa: F401 - the charts are drawn with it
    except ImportError:
        raise CliError(
            "--out needs matplotlib to draw the charts: pip install 'podtier[report]' "
            "(or leave --out out for the terminal summary)"
        ) from None
    from podtier.webhook.report.charts import charts
    from podtier.webhook.report.page import page

    html = page(result, charts(result)).encode()
    target = Path(out)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:  # written beside it, then renamed: `out` is the whole page or what it was before
        temporary.write_bytes(html)
        os.replace(temporary, target)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise CliError(f"--out {out}: cannot write: {err.strerror}") from None
    return len(html)


def _observe(cluster: str, kubeconfig: str | None, policy: Policy) -> Observed:
    try:
        if cluster == "auto":
            return from_cluster(kubeconfig, policy)
        if not Path(cluster).is_file():
            raise CliError(
                f'--cluster "{cluster}": no such file (expected auto, or the output of '
                "kubectl get nodes,pods,taskprofiles -A -o json)"
            )
        return from_file(cluster, policy)
    except SourceError as err:
        raise CliError(str(err)) from None
