"""`podtier pods`: the cluster's Airflow pods by pool, tier and phase, with pending ages.

    podtier pods --cluster auto [--kubeconfig PATH]    one list of pods from the cluster
    podtier pods --cluster FILE                        kubectl get pods -A -o json (or nodes,pods)

Airflow pods are those the policy's `airflowPods` selectors match; tier and pool are read from
podtier's annotations (a pod without a pool annotation is put in the pool its nodeSelector
asks for). "Waiting" pods are Pending and not yet bound to a node: the P of each pool's
scaling signal, shown with the nodes it asks for when the pool has `scaling` set.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from podtier.webhook.commands.args import CliError, load_policy_paths, policy_arg
from podtier.webhook.insight.facts import PHASES, PodFacts, airflow_facts
from podtier.webhook.insight.scaling import desired_nodes_by_pool
from podtier.webhook.policy import Policy


@dataclass
class Row:
    pool: str
    tier: str
    phases: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PHASES, 0))
    pending_ages: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PodsReport:
    rows: list[Row]
    waiting: dict[str, int]  # pool -> pods Pending and unbound
    desired_nodes: dict[str, int]
    total: int


def summarize(pods: Iterable[PodFacts], policy: Policy, now: float) -> PodsReport:
    """Pure: the report for these Airflow pods at Unix time `now`."""
    rows: dict[tuple[str, str], Row] = {}
    waiting: dict[str, int] = {}
    total = 0
    for pod in pods:
        total += 1
        row = rows.setdefault((pod.pool, pod.tier), Row(pod.pool, pod.tier))
        row.phases[pod.phase] += 1
        if pod.phase == "Pending":
            if pod.created is not None:
                row.pending_ages.append(max(0.0, now - pod.created))
            if not pod.bound:
                waiting[pod.pool] = waiting.get(pod.pool, 0) + 1
    ordered = [rows[key] for key in sorted(rows, key=lambda k: (k[0] == "", k))]
    return PodsReport(ordered, waiting, desired_nodes_by_pool(policy, waiting), total)


def as_json(report: PodsReport, policy: Policy, source: str) -> dict[str, Any]:
    pools = sorted(set(report.waiting) | set(report.desired_nodes) | {r.pool for r in report.rows})
    return {
        "policy": policy.ident,
        "source": source,
        "total": report.total,
        "rows": [
            {
                "pool": row.pool,
                "tier": row.tier,
                "phases": row.phases,
                "pending_oldest_seconds": _round(max(row.pending_ages, default=None)),
                "pending_median_seconds": _round(
                    statistics.median(row.pending_ages) if row.pending_ages else None
                ),
            }
            for row in report.rows
        ],
        "pools": {
            pool: {
                "waiting": report.waiting.get(pool, 0),
                "desired_nodes": report.desired_nodes.get(pool),
            }
            for pool in pools
        },
    }


def render(report: PodsReport, policy: Policy, source: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(110, Console().width))
    table = Table(title=f"Airflow pods ({source}, policy {policy.ident})")
    for column in ("pool", "tier", *PHASES):
        table.add_column(column, justify="left" if column in ("pool", "tier") else "right")
    table.add_column("oldest pending", justify="right")
    table.add_column("median pending", justify="right")
    for row in report.rows:
        median = statistics.median(row.pending_ages) if row.pending_ages else None
        table.add_row(
            row.pool or "-",
            row.tier or "-",
            *(str(row.phases[p]) for p in PHASES),
            _age(max(row.pending_ages, default=None)),
            _age(median),
        )
    console.print(table)
    if report.waiting or report.desired_nodes:
        pools = Table(title="Pools: pods waiting for a node, and the nodes asked for")
        pools.add_column("pool")
        pools.add_column("waiting", justify="right")
        pools.add_column("desired nodes", justify="right")
        for pool in sorted(set(report.waiting) | set(report.desired_nodes)):
            desired = report.desired_nodes.get(pool)
            pools.add_row(
                pool or "-",
                str(report.waiting.get(pool, 0)),
                "-" if desired is None else str(desired),
            )
        console.print(pools)
    console.print(f"{report.total} Airflow pods")


def headroom_with_desired_nodes(
    path: str, policy: Policy, others: dict[str, list[Mapping[str, Any]]] | None = None
) -> tuple[Any, dict[str, int]]:
    """Load a `kubectl get -o json` file once: the headroom picture, and each scaled pool's
    desired nodes for the Airflow pods in it (empty when no pool has `scaling` set).
    `others`: more kinds to collect on the same read (see `load_cluster_file`)."""
    from podtier.webhook.headroom import HeadroomConfigError, StaticHeadroom
    from podtier.webhook.headroom.snapshot import ClusterFileError, load_cluster_file

    headroom = StaticHeadroom(source=f"file {path}", static=True)
    if any(tier.max_wait_seconds is not None for tier in policy.tiers.values()):
        headroom.track_running()  # for the wait outlook (`core.waiting`)
    scaled = any(pool.scaling is not None for pool in policy.pools.values())
    waiting: dict[str, PodFacts] = {}  # the desired nodes count only the waiting pods
    if scaled:

        def collect(event_type: str, key: str, raw: Mapping[str, Any] | None) -> None:
            fact = airflow_facts(raw, policy) if raw is not None else None
            if fact is not None and fact.phase == "Pending" and not fact.bound:
                waiting[key] = fact
            else:
                waiting.pop(key, None)

        headroom.add_pod_listener(collect)
    try:
        load_cluster_file(path, headroom=headroom, others=others)
    except ClusterFileError as err:
        raise HeadroomConfigError(str(err)) from None
    desired = summarize(waiting.values(), policy, time.time()).desired_nodes if scaled else {}
    return headroom, desired


# ---------------------------------------------------------------------------- the command


def add_command(sub: Any) -> None:
    pods = sub.add_parser("pods", help="count the cluster's Airflow pods by pool, tier and phase")
    pods.add_argument(
        "--cluster",
        default="auto",
        metavar="auto|FILE",
        help="auto (in-cluster or kubeconfig; one list of pods) or a kubectl get -o json dump",
    )
    pods.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for --cluster auto")
    pods.add_argument("--output", choices=["table", "json"], default="table")
    policy_arg(pods)
    pods.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = load_policy_paths(args.policy)
    try:
        raw_pods, source = _read_pods(args.cluster, args.kubeconfig)
        facts = (airflow_facts(raw, policy) for raw in raw_pods)
        report = summarize((f for f in facts if f is not None), policy, time.time())
    except (OSError, ValueError) as err:
        raise CliError(str(err)) from None
    if args.output == "json":
        data = as_json(report, policy, source)
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(report, policy, source)
    return 0


def _read_pods(cluster: str, kubeconfig: str | None) -> tuple[Iterator[Mapping[str, Any]], str]:
    """The cluster's pods as a stream (a file's items, or a live list's pages, read as they are
    taken: `summarize` folds them one by one), and where they come from."""
    if cluster != "auto":
        from podtier.webhook.headroom.decode import PodFields
        from podtier.webhook.headroom.snapshot import file_pods

        if not Path(cluster).is_file():
            raise ValueError(
                f'--cluster "{cluster}": no such file (expected auto, or the output of '
                "kubectl get pods -A -o json)"
            )
        return file_pods(cluster, PodFields.LISTENERS), f"file {cluster}"
    from podtier.webhook.headroom import cluster_configuration

    configuration = cluster_configuration(kubeconfig)
    return _list_pods(configuration), configuration.host


def _list_pods(configuration: Any) -> Iterator[Mapping[str, Any]]:
    from kubernetes import client

    from podtier.webhook.insight.listing import list_pages

    with client.ApiClient(configuration) as api_client:
        core = client.CoreV1Api(api_client)
        pages = list_pages(core.list_pod_for_all_namespaces, what=f"pods at {configuration.host}")
        for page in pages:
            yield from page


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d"
