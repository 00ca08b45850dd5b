"""RFC 6902 JSON Patch from a pod and a decision.

Ops are derived from the desired state: `add` where a path is missing (parents before their
leaves: a whole `resources`, `nodeSelector`, `tolerations` or `annotations` object when it is
absent), `replace` where a value differs, nothing where it is already right. Keys are escaped
per RFC 6901 (`nvidia.com/gpu` → `nvidia.com~1gpu`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtier.webhook.core.decide import Decision
from podtier.webhook.core.placement import (
    pod_affinity,
    pod_node_selector,
    pod_tolerations,
    pool_tolerations,
)
from podtier.webhook.core.pod import PodView
from podtier.webhook.core.tiering import CONDITIONAL_ANNOTATIONS

Op = dict[str, Any]


def escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def build_patch(pod: PodView, decision: Decision) -> list[Op]:
    ops: list[Op] = []
    raw = pod.raw
    spec = raw.get("spec") or {}
    main = pod.main
    if main is not None and decision.sizing is not None:
        container = spec["containers"][main.index]
        base = f"/spec/containers/{main.index}/resources"
        resources = container.get("resources")
        wanted = {
            "requests": dict(decision.sizing.set_requests),
            "limits": dict(decision.sizing.set_limits),
        }
        if not resources:
            body = {k: v for k, v in wanted.items() if v}
            if body:
                ops.append(
                    {"op": "add" if resources is None else "replace", "path": base, "value": body}
                )
        else:
            for section, values in wanted.items():
                _merge_map(ops, f"{base}/{section}", resources.get(section), values)

    if decision.mode == "prefer":
        _set_affinity(ops, spec, pod_affinity(spec.get("affinity"), decision.pools, decision.pool))
        _remove_keys(ops, "/spec/nodeSelector", spec.get("nodeSelector"), decision.removed_selector)
        tolerations, added = pool_tolerations(pod.tolerations, decision.pools)
    else:
        selector = pod_node_selector(pod.node_selector, decision.pool)
        _merge_map(ops, "/spec/nodeSelector", spec.get("nodeSelector"), selector)
        tolerations, added = pod_tolerations(pod.tolerations, decision.pool)
    if added:
        if spec.get("tolerations") is None:
            ops.append({"op": "add", "path": "/spec/tolerations", "value": tolerations})
        else:
            ops += [{"op": "add", "path": "/spec/tolerations/-", "value": t} for t in added]

    metadata = raw.get("metadata")
    if metadata is None:
        ops.append(
            {"op": "add", "path": "/metadata", "value": {"annotations": dict(decision.annotations)}}
        )
    else:
        current = metadata.get("annotations")
        _merge_map(ops, "/metadata/annotations", current, decision.annotations)
        if isinstance(current, Mapping):
            # What podtier learned or counted, present on the pod but not true of this
            # decision: a leftover of a copied spec (or a forgery), removed.
            for key in CONDITIONAL_ANNOTATIONS:
                if key in current and key not in decision.annotations:
                    ops.append({"op": "remove", "path": f"/metadata/annotations/{escape(key)}"})
    return ops


def _set_affinity(ops: list[Op], spec: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    current = spec.get("affinity")
    if not isinstance(current, Mapping):
        ops.append(
            {
                "op": "add" if current is None else "replace",
                "path": "/spec/affinity",
                "value": dict(wanted),
            }
        )
    elif current.get("nodeAffinity") != wanted["nodeAffinity"]:
        op = "add" if current.get("nodeAffinity") is None else "replace"
        ops.append(
            {"op": op, "path": "/spec/affinity/nodeAffinity", "value": wanted["nodeAffinity"]}
        )


def _remove_keys(ops: list[Op], path: str, current: Any, keys: Mapping[str, Any]) -> None:
    """Ops that take `keys` out of the map at `path`; the whole map when nothing else is left."""
    if not keys or not isinstance(current, Mapping):
        return
    if all(key in keys for key in current):
        ops.append({"op": "remove", "path": path})
        return
    ops += [{"op": "remove", "path": f"{path}/{escape(key)}"} for key in keys if key in current]


def _merge_map(ops: list[Op], path: str, current: Any, wanted: Mapping[str, Any]) -> None:
    """Ops that make the map at `path` hold every `wanted` pair, keeping its other keys."""
    if not wanted:
        return
    if type(current) is not dict and not isinstance(current, Mapping):  # dict: no ABC lookup
        ops.append(
            {"op": "add" if current is None else "replace", "path": path, "value": dict(wanted)}
        )
        return
    for key, value in wanted.items():
        if key not in current:
            ops.append({"op": "add", "path": f"{path}/{escape(key)}", "value": value})
        elif current[key] != value:
            ops.append({"op": "replace", "path": f"{path}/{escape(key)}", "value": value})
