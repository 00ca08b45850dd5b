"""`podtier profiles`: what podtier learned of each Airflow task, from its TaskProfiles.

    podtier profiles --cluster auto [--kubeconfig PATH] [--policy PATH]...
    podtier profiles --cluster FILE      kubectl get nodes,pods,taskprofiles -A -o json

Per task: runs, OOM kills, the decaying memory peak and cpu p95, what its last run requested
against what it uses, the tier it ran in, and what the policy's learning settings recommend for
it (per resource: cpu and memory requests and the memory limit, in a tier; or a whole tier).
Objects that cannot be read are left out, each said on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from podtier.webhook.commands.args import CliError, load_policy_paths, policy_arg
from podtier.webhook.core.profile import MEMORY_UNIT, TaskProfile
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.rightsizing import Recommendation, recommend_for_task
from podtier.webhook.learning.profiles import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ProfileError,
    parse_profile,
)
from podtier.webhook.policy import Policy

MIB = 2**20


@dataclass(frozen=True)
class Read:
    profiles: list[TaskProfile]
    ignored: list[str]  # "namespace/name: why"
    source: str


def read_objects(objects: Iterable[Mapping[str, Any]], source: str) -> Read:
    """Pure: the readable profiles among `objects`, sorted by namespace, dag and task."""
    profiles, ignored = [], []
    for obj in objects:
        try:
            profiles.append(parse_profile(obj))
        except ProfileError as err:
            meta = obj.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            ignored.append(f"{meta.get('namespace', '')}/{meta.get('name', '')}: {err}")
    profiles.sort(key=lambda p: (p.namespace, p.dag_id, p.task_id))
    return Read(profiles, ignored, source)


def as_row(profile: TaskProfile, policy: Policy) -> dict[str, Any]:
    requests = profile.requests
    return {
        "namespace": profile.namespace,
        "dag_id": profile.dag_id,
        "task_id": profile.task_id,
        "name": profile.name,
        "runs": profile.runs,
        "oom_kills": profile.oom_kills,
        "memory_peak_bytes": profile.memory_peak_bytes,
        "cpu_p95_milli": profile.cpu_p95_milli,
        "requested": {
            "cpu_milli": requests.get("cpu"),
            "memory_bytes": requests["memory"] // 1000 if "memory" in requests else None,
        },
        "tier": profile.tier or None,
        "recommended_tier": profile.recommended_tier,
        "recommendation": recommendation_row(recommend_for_task(profile, policy)),
        "updated_at": profile.updated_at or None,
    }


def recommendation_row(recommendation: Recommendation) -> dict[str, Any]:
    """What the policy recommends for the task now: a tier, and per resource the cpu request
    (millicores) and the memory request and limit (bytes); or why there is none."""
    target = recommendation.target
    return {
        "tier": recommendation.tier.name if recommendation.tier is not None else None,
        "cpu_milli": target.requests["cpu"] if target is not None else None,
        "memory_bytes": target.requests["memory"] // MEMORY_UNIT if target is not None else None,
        "memory_limit_bytes": target.limits["memory"] // MEMORY_UNIT
        if target is not None
        else None,
        "why": recommendation.why,
    }


def render(read: Read, policy: Policy) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, Console().width))
    table = Table(title=f"Task profiles ({read.source})")
    for column in ("namespace", "dag", "task"):
        table.add_column(column, overflow="fold")
    for column in ("runs", "OOM", "memory used / req", "cpu used / req"):
        table.add_column(column, justify="right")
    table.add_column("tier")
    table.add_column("recommended")
    table.add_column("recommended cpu / memory (limit)")
    for p in read.profiles:
        recommendation = recommend_for_task(p, policy)
        table.add_row(
            p.namespace,
            p.dag_id,
            p.task_id,
            str(p.runs),
            str(p.oom_kills),
            f"{_memory(p.memory_peak_bytes)} / {_quantity(p.requests.get('memory'), 'memory')}",
            f"{_cpu(p.cpu_p95_milli)} / {_quantity(p.requests.get('cpu'), 'cpu')}",
            p.tier or "-",
            _recommended(p),
            _sizes(recommendation),
        )
    console.print(table)
    console.print(
        f"{len(read.profiles)} tasks"
        + (f"; {len(read.ignored)} unreadable profiles left out" if read.ignored else "")
        + ". Memory used is the decaying peak working set, cpu used the decaying p95."
    )


def _sizes(recommendation: Recommendation) -> str:
    target = recommendation.target
    if target is None:
        return "-" if recommendation.tier is not None else recommendation.why
    return (
        f"{format_milli(target.requests['cpu'], 'cpu')} / "
        f"{format_milli(target.requests['memory'], 'memory')} "
        f"({format_milli(target.limits['memory'], 'memory')}) in {recommendation.tier.name}"
        if recommendation.tier is not None
        else "-"
    )


def _recommended(profile: TaskProfile) -> str:
    if profile.recommended_tier is None:
        return "-"
    if profile.recommended_tier == profile.tier:
        return f"{profile.recommended_tier} (as now)"
    return profile.recommended_tier


def _memory(value: int | None) -> str:
    return "-" if value is None else format_milli(-(-value // MIB) * MIB * 1000, "memory")


def _cpu(value: int | None) -> str:
    return "-" if value is None else format_milli(value, "cpu")


def _quantity(milli: int | None, resource: str) -> str:
    return "-" if milli is None else format_milli(milli, resource)


# ---------------------------------------------------------------------------- the command


def add_command(sub: Any) -> None:
    profiles = sub.add_parser(
        "profiles", help="show what podtier learned of each Airflow task (TaskProfiles)"
    )
    profiles.add_argument(
        "--cluster",
        default="auto",
        metavar="auto|FILE",
        help="auto (in-cluster or kubeconfig) or kubectl get nodes,pods,taskprofiles -A -o json",
    )
    profiles.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig for --cluster auto")
    profiles.add_argument("--output", choices=["table", "json"], default="table")
    policy_arg(profiles)
    profiles.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = load_policy_paths(args.policy)
    read = _read(args.cluster, args.kubeconfig)
    for line in read.ignored:
        print(f"podtier: ignored TaskProfile {line}", file=sys.stderr)
    if args.output == "json":
        data = {"source": read.source, "profiles": [as_row(p, policy) for p in read.profiles]}
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        render(read, policy)
    return 0


def _read(cluster: str, kubeconfig: str | None) -> Read:
    if cluster != "auto":
        from podtier.webhook.headroom.snapshot import ClusterFileError, read_cluster_objects

        if not Path(cluster).is_file():
            raise CliError(
                f'--cluster "{cluster}": no such file (expected auto, or the output of '
                "kubectl get nodes,pods,taskprofiles -A -o json)"
            )
        try:
            objects, _ = read_cluster_objects(cluster, (KIND,))
        except ClusterFileError as err:
            raise CliError(str(err)) from None
        return read_objects(objects[KIND], f"file {cluster}")

    from kubernetes import client

    from podtier.webhook.headroom import HeadroomConfigError, cluster_configuration

    try:
        configuration = cluster_configuration(kubeconfig)
    except HeadroomConfigError as err:
        raise CliError(str(err)) from None
    with client.ApiClient(configuration) as api_client:
        objects = _list(client.CustomObjectsApi(api_client), configuration.host)
    return read_objects(objects, configuration.host)


def _list(api: Any, host: str) -> list[Mapping[str, Any]]:
    from podtier.webhook.insight.listing import ListError, list_pages

    items: list[Mapping[str, Any]] = []
    try:
        for page in list_pages(
            api.list_cluster_custom_object, GROUP, VERSION, PLURAL, what=f"TaskProfiles at {host}"
        ):
            items += page
    except ListError as err:
        if err.status == 404:
            raise CliError(
                f"{host} has no taskprofiles.podtier.io: the TaskProfile CRD is not "
                "installed (the chart ships it; learning must be on)"
            ) from None
        raise CliError(str(err)) from None
    return items
