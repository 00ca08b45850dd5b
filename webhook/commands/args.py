"""Arguments and helpers that several commands share: `--policy`, the cluster source, and the
one error type a command raises for a user's mistake."""

from __future__ import annotations

import argparse

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core.capacity import StartableHeadroom
from podtier.webhook.policy import Policy
from podtier.webhook.policy.load import load_policy

USAGE_ERROR = 2


class CliError(Exception):
    """A user error: the message is printed as is, exit code 2."""


def policy_arg(parser: argparse.ArgumentParser) -> None:
    """`--policy PATH`, repeatable, as every command that decides takes it."""
    parser.add_argument(
        "--policy",
        action="append",
        metavar="PATH",
        help="policy file or directory; repeat to load several in order (default: built-in)",
    )


def cluster_args(parser: argparse.ArgumentParser) -> None:
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
        "--peers",
        metavar="GROUP",
        help="several replicas: share each pool's nodes with the live replicas that keep a "
        "Lease labelled podtier.io/peers=GROUP in $POD_NAMESPACE (needs --cluster auto, and "
        "leases get/list/create/patch/delete there)",
    )
    parser.add_argument(
        "--reservation-ttl",
        type=float,
        default=30.0,
        metavar="S",
        help="hold a placed pod's requests on its node this long, or until the watch sees it",
    )


def load_policy_paths(paths: list[str] | None) -> Policy:
    return load_policy(paths or [DEFAULT_POLICY])


def open_cluster(
    cluster: str,
    kubeconfig: str | None = None,
    stale_after: float = 60.0,
    reservation_ttl: float = 30.0,
    namespace_labels: bool = False,
) -> StartableHeadroom:
    from podtier.webhook.headroom import HeadroomConfigError, open_headroom

    try:
        return open_headroom(
            cluster, kubeconfig, stale_after, reservation_ttl, namespaces=namespace_labels
        )
    except HeadroomConfigError as err:
        raise CliError(str(err)) from None
