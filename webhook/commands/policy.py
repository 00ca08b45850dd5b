"""`podtier policy lint PATH...`, `podtier policy test DIR [--junit FILE]` and
`podtier policy vap PATH... [--name NAME] [--namespace NS] [--namespaces NS,...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from podtier.webhook.commands.args import CliError, open_cluster
from podtier.webhook.policy import PolicyError
from podtier.webhook.policy.load import load_policy


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="check policy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    lint = policy_sub.add_parser("lint", help="check policy files; exit 1 on any error")
    lint.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories")
    test = policy_sub.add_parser("test", help="run policy test suites; exit 1 on any failure")
    test.add_argument("target", metavar="DIR", help="a suite file, or a directory of *-test.yaml")
    test.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")

    vap = policy_sub.add_parser(
        "vap",
        help="print the policy's limits as a ValidatingAdmissionPolicy, its binding and its "
        "parameters (YAML, for kubectl apply -f -)",
    )
    vap.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories")
    vap.add_argument("--name", default="podtier", help="of the policy, binding and ConfigMap")
    vap.add_argument("--namespace", default="podtier", help="of the ConfigMap (podtier's own)")
    vap.add_argument(
        "--namespaces",
        default="",
        metavar="NS,...",
        help="the Airflow namespaces it applies to (default: all but --namespace and kube-system)",
    )

    lint.set_defaults(func=lint_command)
    vap.set_defaults(func=vap_command)
    test.set_defaults(func=test_command)


def lint_command(args: argparse.Namespace) -> int:
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


def vap_command(args: argparse.Namespace) -> int:
    import yaml

    from podtier.webhook.policy.admission_policy import admission_policy

    try:
        policy = load_policy(args.paths)
    except PolicyError as err:
        print(f"podtier: {err}", file=sys.stderr)
        return 1
    namespaces = [n for n in args.namespaces.split(",") if n]
    objects = admission_policy(policy, args.name, args.namespace, namespaces)
    print(yaml.safe_dump_all(objects, sort_keys=False, width=1000), end="")
    return 0


def test_command(args: argparse.Namespace) -> int:
    from podtier.webhook import policytest

    try:
        suites = [policytest.load_suite(f) for f in policytest.find_suites(Path(args.target))]
    except policytest.SuiteError as err:
        raise CliError(str(err)) from None
    results = [policytest.run_suite(s, lambda path: open_cluster(str(path))) for s in suites]
    print(policytest.render_text(results))
    if args.junit:
        try:
            Path(args.junit).write_bytes(policytest.junit_xml(results))
        except OSError as err:
            raise CliError(f"--junit {args.junit}: cannot write: {err.strerror or err}") from None
    return 0 if all(r.passed for r in results) else 1
