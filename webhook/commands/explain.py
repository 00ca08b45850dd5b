"""`podtier explain FILE`: what podtier would do to one pod, and why, without a server.

With `--cluster FILE` (`kubectl get nodes,pods,taskprofiles -A -o json`) it reads headroom and
the learned task profiles from the same dump, so an OOM escalation or a recommended tier shows
as the server would give it."""

from __future__ import annotations

import argparse
import base64
import copy
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonpatch
import orjson

from podtier.webhook.commands.args import CliError, load_policy_paths, open_cluster, policy_arg
from podtier.webhook.core import admission
from podtier.webhook.core.capacity import Headroom
from podtier.webhook.core.profile import ProfilesView
from podtier.webhook.core.tiering import (
    ESCALATED_MEMORY_ANNOTATION,
    RECOMMENDED_CPU_ANNOTATION,
    RECOMMENDED_MEMORY_ANNOTATION,
    RECOMMENDED_MEMORY_LIMIT_ANNOTATION,
    RECOMMENDED_TIER_ANNOTATION,
    RIGHT_SIZED_ANNOTATION,
)
from podtier.webhook.documents import pod_and_request
from podtier.webhook.policy import Policy


def explain(
    path: str,
    policy: Policy,
    headroom: Headroom,
    desired_nodes: Mapping[str, int] | None = None,
    profiles: ProfilesView | None = None,
) -> dict[str, Any]:
    """What podtier would do to the pod in `path`; `desired_nodes` (each scaled pool's
    signal, known only with a cluster file) is passed through as is; `profiles`: the learned
    task profiles (None: learning not considered)."""
    result = _explain(path, policy, headroom, profiles)
    result["desired_nodes"] = None if desired_nodes is None else dict(desired_nodes)
    return result


def _explain(
    path: str, policy: Policy, headroom: Headroom, profiles: ProfilesView | None
) -> dict[str, Any]:
    pod, request = pod_and_request(path)
    request = {**request, "uid": request.get("uid") or "explain", "dryRun": True}
    with headroom.transaction(time.monotonic()) as view:
        answer = admission.mutate(request, policy, view, None, profiles)
    decision = answer.decision
    response = answer.review["response"]
    warnings = list(response.get("warnings", []))
    if decision is None:
        reason = "left alone: " + (warnings[0] if warnings else "not an Airflow pod being created")
        return {
            "tier": None,
            "pool": None,
            "placement": None,
            "node": None,
            "recommended_tier": None,
            "recommendation": None,
            "asked": None,
            "escalated_memory": None,
            "removed_node_selector": {},
            "reason": reason,
            "warnings": warnings,
            "patch": [],
            "allowed": True,
            "violations": [],
        }
    patch = _patch_of(answer)
    mutated = jsonpatch.apply_patch(copy.deepcopy(pod), patch)
    checked = admission.validate({**request, "object": mutated}, policy)
    return {
        "tier": decision.tier.name,
        "pool": decision.pool.name,
        "placement": decision.mode,
        "node": decision.node,
        "recommended_tier": decision.annotations.get(RECOMMENDED_TIER_ANNOTATION),
        "recommendation": _recommendation(decision.annotations),
        "asked": _base_resources(pod),
        "escalated_memory": decision.annotations.get(ESCALATED_MEMORY_ANNOTATION),
        "removed_node_selector": dict(decision.removed_selector),
        "reason": decision.reason,
        "warnings": warnings,
        "patch": patch,
        "allowed": checked.review["response"]["allowed"],
        "violations": [v.message for v in checked.violations],
    }


def render_text(result: dict[str, Any], policy: Policy) -> str:
    lines = [
        f"policy:  {policy.ident} ({', '.join(policy.sources)})",
        f"tier:    {result['tier'] or '-'}",
        f"pool:    {result['pool'] or '-'}"
        + (f" ({result['placement']})" if result["placement"] else "")
        + (f", node {result['node']} fits" if result["node"] else ""),
        f"why:     {result['reason']}",
    ]
    removed = result.get("removed_node_selector")
    if removed:
        pairs = ", ".join(f"{key}={value}" for key, value in removed.items())
        lines.append(
            f"removed: nodeSelector {pairs} (a pool's key: prefer lets the scheduler pick the pool)"
        )
    recommendation = result.get("recommendation")
    if recommendation:
        asked = result.get("asked") or {}
        lines.append(
            f"learned: recommended cpu {recommendation['cpu']}, memory "
            f"{recommendation['memory']} (limit {recommendation['memory_limit']}) in tier "
            f"{result['recommended_tier']}; the pod asked for cpu "
            f"{_asked(asked, 'requests', 'cpu')}, memory {_asked(asked, 'requests', 'memory')} "
            f"(limit {_asked(asked, 'limits', 'memory')}); "
            + ("applied" if recommendation["applied"] else "not applied")
        )
    elif result.get("recommended_tier"):
        lines.append(f"learned: recommended tier {result['recommended_tier']}")
    if result.get("escalated_memory"):
        lines.append(f"learned: memory raised to {result['escalated_memory']} after an OOM kill")
    lines += [f"warning: {w}" for w in result["warnings"]]
    verdict = "allowed" if result["allowed"] else "DENIED"
    lines.append(f"validate: {verdict}")
    lines += [f"  - {v}" for v in result["violations"]]
    if result["patch"]:
        lines.append("patch:")
        for op in result["patch"]:
            value = "" if "value" not in op else f" {_short(op['value'])}"
            lines.append(f"  {op['op']:<7} {op['path']}{value}")
    else:
        lines.append("patch:   (none)")
    desired = result.get("desired_nodes")
    if desired is not None:
        shown = ", ".join(f"{pool} {nodes}" for pool, nodes in desired.items())
        lines.append(f"desired nodes: {shown or '(no pool has scaling set)'}")
    return "\n".join(lines)


def _recommendation(annotations: Mapping[str, str]) -> dict[str, Any] | None:
    """The per-resource recommendation as the annotations carry it, and whether it was
    applied (None with `sizing: tier`, or without one)."""
    if RECOMMENDED_CPU_ANNOTATION not in annotations:
        return None
    return {
        "cpu": annotations[RECOMMENDED_CPU_ANNOTATION],
        "memory": annotations.get(RECOMMENDED_MEMORY_ANNOTATION),
        "memory_limit": annotations.get(RECOMMENDED_MEMORY_LIMIT_ANNOTATION),
        "applied": RIGHT_SIZED_ANNOTATION in annotations,
    }


def _base_resources(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What the pod's `base` container asked for itself (requests and limits as written)."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    for container in spec.get("containers") or []:
        if isinstance(container, dict) and container.get("name") == "base":
            resources = container.get("resources")
            return dict(resources) if isinstance(resources, dict) else {}
    return {}


def _asked(asked: Mapping[str, Any], kind: str, resource: str) -> str:
    values = asked.get(kind)
    value = values.get(resource) if isinstance(values, dict) else None
    return "-" if value is None else str(value)


def _patch_of(answer: admission.Answer) -> list[dict[str, Any]]:
    encoded = answer.review["response"].get("patch")
    return orjson.loads(base64.b64decode(encoded)) if encoded else []


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 100 else text[:97] + "..."


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = sub.add_parser("explain", help="show what podtier would do to a pod, and why")
    explain.add_argument("file", metavar="FILE", help="a Pod or an AdmissionReview, JSON or YAML")
    policy_arg(explain)
    explain.add_argument(
        "--cluster",
        default="none",
        metavar="none|FILE",
        help="kubectl get nodes,pods,taskprofiles -A -o json: headroom and learned profiles",
    )
    explain.add_argument("--output", choices=["text", "json"], default="text")

    explain.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = load_policy_paths(args.policy)
    desired = None
    profiles = None
    if args.cluster not in ("none", "auto") and Path(args.cluster).is_file():
        from podtier.webhook.commands.pods import headroom_with_desired_nodes
        from podtier.webhook.headroom import ClusterFileError, HeadroomConfigError
        from podtier.webhook.learning.profiles import KIND
        from podtier.webhook.learning.snapshot import profiles_from

        try:
            others: dict[str, list[Mapping[str, Any]]] = {KIND: []}  # one read of the file
            headroom, desired = headroom_with_desired_nodes(args.cluster, policy, others)
            profiles = profiles_from(others[KIND], args.cluster).view(time.monotonic())
        except (HeadroomConfigError, ClusterFileError) as err:
            raise CliError(str(err)) from None
    else:
        headroom = open_cluster(args.cluster)
    result = explain(args.file, policy, headroom, desired, profiles)
    if args.output == "json":
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_text(result, policy))
    return 0
