"""podtier's command line: `serve`, `explain`, `pods`, `policy lint|test`, `certs generate|show`.

Every error a user can cause is one line naming the file, field or flag and the value, and exit
code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

import certs.cli
import certs.serving
from policies import DEFAULT_POLICY
from webhook import __version__
from webhook.capacity import StartableHeadroom
from webhook.documents import DocumentError
from webhook.policy import Policy, PolicyError, load_policy

if TYPE_CHECKING:
    from webhook.serve import ServeSetup

USAGE_ERROR = 2


class CliError(Exception):
    """A user error: the message is printed as is, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podtier",
        description="Admission webhook that sizes and places Apache Airflow worker pods.",
    )
    parser.add_argument("--version", action="version", version=f"podtier {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the admission webhook over HTTPS")
    serve.add_argument("--dev", action="store_true", help="own throwaway certs, 127.0.0.1:8443")
    serve.add_argument("--cert-dir", type=Path, metavar="DIR", help="holds tls.crt and tls.key")
    serve.add_argument("--host", default=None, help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="PORT",
        help="also serve /metrics, /healthz and /readyz over plain HTTP on PORT (0: off)",
    )
    policy_arg(serve)
    _cluster_args(serve)
    certs.serving.add_serve_args(serve)
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="after SIGTERM, stay up not-ready this long before closing (default 0)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning"], default="info")
    _cleanup_args(serve)

    explain = sub.add_parser("explain", help="show what podtier would do to a pod, and why")
    explain.add_argument("file", metavar="FILE", help="a Pod or an AdmissionReview, JSON or YAML")
    policy_arg(explain)
    explain.add_argument("--cluster", default="none", metavar="none|FILE")
    explain.add_argument("--output", choices=["text", "json"], default="text")

    from webhook import pods_cmd

    pods_cmd.add_command(sub)

    policy = sub.add_parser("policy", help="check policy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    lint = policy_sub.add_parser("lint", help="check policy files; exit 1 on any error")
    lint.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories")
    test = policy_sub.add_parser("test", help="run policy test suites; exit 1 on any failure")
    test.add_argument("target", metavar="DIR", help="a suite file, or a directory of *-test.yaml")
    test.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")

    certs.cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "explain":
            return cmd_explain(args)
        if args.command == "policy" and args.policy_command == "test":
            return cmd_policy_test(args)
        if args.command == "policy":
            return cmd_policy_lint(args)
        if args.command == "pods":
            from webhook import pods_cmd

            return pods_cmd.run(args)
        return int(args.func(args))
    except (CliError, PolicyError, DocumentError) as err:
        print(f"podtier: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `podtier explain ... | head`
        sys.stderr.close()
        return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from webhook import logs
    from webhook.serve import ServeSetup, make_dev_certs, print_dev_banner, run_server
    from webhook.server import Listen

    logs.configure(args.log_level)
    policy = load_policy_paths(args.policy)
    if args.dev:
        cert_dir = args.cert_dir or make_dev_certs()
        host = args.host or "127.0.0.1"
    else:
        if args.cert_dir is None:
            raise CliError("serve: --cert-dir DIR is required (or --dev for throwaway certs)")
        cert_dir = args.cert_dir
        host = args.host or "0.0.0.0"
    try:  # --manage-certs: the Secret's pair is written to cert_dir before we go on
        cert_manager = certs.serving.manager_from_args(args, cert_dir)
    except certs.serving.ServeCertsError as error:
        raise CliError(str(error)) from None
    for name in ("tls.crt", "tls.key"):
        if not (cert_dir / name).is_file():
            raise CliError(f"--cert-dir {cert_dir}: {name} is missing")
    listen = Listen(host, args.port, args.metrics_port, args.drain_seconds)
    headroom = _headroom(
        args.cluster, args.kubeconfig, args.stale_after, args.reservation_ttl, args.namespace_labels
    )
    setup = ServeSetup(policy, headroom, cert_dir, listen)
    warn_unseen_namespace_labels(policy, args.namespace_labels)
    _add_insight_and_cleanup(args, setup)
    if cert_manager is not None:
        setup.background.append(lambda state: cert_manager.run)
    if args.policy:
        from webhook.policy.reload import policy_reload_job

        setup.background.append(policy_reload_job(args.policy))
    on_started = (lambda: print_dev_banner(cert_dir, listen)) if args.dev else None
    run_server(setup, on_started)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from webhook.explain import explain, render_text

    policy = load_policy_paths(args.policy)
    desired = None
    if args.cluster not in ("none", "auto") and Path(args.cluster).is_file():
        from webhook.headroom import HeadroomConfigError
        from webhook.pods_cmd import headroom_with_desired_nodes

        try:
            headroom, desired = headroom_with_desired_nodes(args.cluster, policy)
        except HeadroomConfigError as err:
            raise CliError(str(err)) from None
    else:
        headroom = _headroom(args.cluster)
    result = explain(args.file, policy, headroom, desired)
    if args.output == "json":
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_text(result, policy))
    return 0


def cmd_policy_lint(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.paths)
    except PolicyError as err:
        print(f"podtier: {err}", file=sys.stderr)
        return 1
    print(
        f"ok: {policy.ident}: {len(policy.tiers)} tiers, {len(policy.pools)} pools, "
        f"{len(policy.rules)} rules from {', '.join(policy.sources)}"
    )
    return 0


def cmd_policy_test(args: argparse.Namespace) -> int:
    from webhook import policytest

    try:
        suites = [policytest.load_suite(f) for f in policytest.find_suites(Path(args.target))]
    except policytest.SuiteError as err:
        raise CliError(str(err)) from None
    results = [policytest.run_suite(s, lambda path: _headroom(str(path))) for s in suites]
    print(policytest.render_text(results))
    if args.junit:
        try:
            Path(args.junit).write_bytes(policytest.junit_xml(results))
        except OSError as err:
            raise CliError(f"--junit {args.junit}: cannot write: {err.strerror or err}") from None
    return 0 if all(r.passed for r in results) else 1


def policy_arg(parser: argparse.ArgumentParser) -> None:
    """`--policy PATH`, repeatable, as every command that decides takes it."""
    parser.add_argument(
        "--policy",
        action="append",
        metavar="PATH",
        help="policy file or directory; repeat to load several in order (default: built-in)",
    )


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cluster",
        default="none",
        metavar="none|auto|FILE",
        help="headroom source: none (off), auto (in-cluster or kubeconfig), or a kubectl dump",
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for --cluster auto")
    parser.add_argument(
        "--stale-after",
        type=float,
        default=60.0,
        metavar="S",
        help="treat headroom as unknown when the watch is silent this long (default 60)",
    )
    parser.add_argument(
        "--namespace-labels",
        action="store_true",
        help="also watch namespaces, so rules with a namespaceSelector see their labels "
        "(needs --cluster auto, and list/watch on namespaces)",
    )
    parser.add_argument(
        "--reservation-ttl",
        type=float,
        default=30.0,
        metavar="S",
        help="hold a placed pod's requests on its node this long, or until the watch sees it",
    )


def _cleanup_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cleanup-after",
        metavar="DURATION",
        help="delete finished Airflow worker pods this long after they finished, e.g. 90m, "
        "1h, 2d (needs --cluster auto; default: off)",
    )
    parser.add_argument(
        "--cleanup-lease",
        default="podtier-cleanup",
        metavar="NAME",
        help="the Lease (in $POD_NAMESPACE) that elects the one replica that cleans up",
    )
    parser.add_argument(
        "--cleanup-rate",
        type=float,
        default=10.0,
        metavar="N",
        help="delete at most N pods per second on average (default 10)",
    )


def _add_insight_and_cleanup(args: argparse.Namespace, setup: ServeSetup) -> None:
    """Pod insight whenever there is a cluster picture; cleanup when asked (live only)."""
    from webhook.cleanup.duration import DurationError, parse_duration
    from webhook.headroom import ClusterHeadroom, LiveHeadroom

    after = None
    if args.cleanup_after is not None:
        try:
            after = parse_duration(args.cleanup_after)
        except DurationError as err:
            raise CliError(f"--cleanup-after {err}") from None
        if args.cleanup_rate <= 0:
            raise CliError(f"--cleanup-rate {args.cleanup_rate:g}: expected more than 0 per second")
        if not isinstance(setup.headroom, LiveHeadroom):
            raise CliError(
                f"--cleanup-after needs --cluster auto (finished pods are found through the "
                f"live watch), not --cluster {args.cluster}"
            )
    if not isinstance(setup.headroom, ClusterHeadroom):
        return
    from webhook.insight.job import Insight

    insight = Insight(setup.headroom, setup.policy)
    if not isinstance(setup.headroom, LiveHeadroom):
        insight.load_file(args.cluster)
    setup.background.append(insight.job)
    if after is None or not isinstance(setup.headroom, LiveHeadroom):
        return
    from webhook.cleanup.cleaner import CleanupSettings
    from webhook.cleanup.job import cleanup_job, replica_identity, replica_namespace

    rate = args.cleanup_rate
    settings = CleanupSettings(after=after, rate=rate, burst=max(1, int(rate)))
    setup.background.append(
        cleanup_job(
            insight.census,
            setup.headroom.api_client.configuration,
            settings,
            lease_name=args.cleanup_lease,
            namespace=replica_namespace(),
            identity=replica_identity(),
            synced=setup.headroom.ready,
        )
    )


def load_policy_paths(paths: list[str] | None) -> Policy:
    return load_policy(paths or [DEFAULT_POLICY])


def warn_unseen_namespace_labels(policy: Policy, watched: bool) -> None:
    """A rule whose namespaceSelector reads labels this server never sees would silently never
    match: say so at start."""
    keys = policy.namespace_label_keys()
    if keys and not watched:
        logging.getLogger("podtier.serve").warning(
            "rules select namespaces by labels %s, but namespace labels are not watched: those "
            "rules cannot match; run with --cluster auto --namespace-labels",
            ", ".join(sorted(keys)),
            extra={"policy": policy.ident},
        )


def _headroom(
    cluster: str,
    kubeconfig: str | None = None,
    stale_after: float = 60.0,
    reservation_ttl: float = 30.0,
    namespace_labels: bool = False,
) -> StartableHeadroom:
    from webhook.headroom import HeadroomConfigError, open_headroom

    try:
        return open_headroom(
            cluster, kubeconfig, stale_after, reservation_ttl, namespaces=namespace_labels
        )
    except HeadroomConfigError as err:
        raise CliError(str(err)) from None
