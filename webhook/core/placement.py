"""Which pool a pod goes to: the first pool in placement order with a node that fits it now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podtier.webhook.core.capacity import CapacityView
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.resources import POD_SLOT
from podtier.webhook.policy.model import Pool


@dataclass(frozen=True)
class Placement:
    pool: Pool
    node: str | None  # the node that fits; None when headroom is unknown or nothing fits
    fits: bool
    why: str


def pod_node_selector(existing: Mapping[str, str], pool: Pool) -> dict[str, str]:
    """The pool owns its node-label keys; the pod's other nodeSelector keys are kept."""
    return {**existing, **pool.node_selector}


def toleration_key(toleration: Mapping[str, Any]) -> tuple[object, ...]:
    return (
        toleration.get("key", ""),
        toleration.get("operator", "Equal"),
        toleration.get("value", ""),
        toleration.get("effect", ""),
    )


def pod_tolerations(
    existing: Sequence[Mapping[str, Any]], pool: Pool
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(all tolerations after the change, the ones the pool adds). Never drops or duplicates."""
    have = {toleration_key(t) for t in existing}
    added = [t for t in pool.tolerations if toleration_key(t) not in have]
    return [*existing, *added], added


def place(
    pools: Sequence[Pool],
    requests: Mapping[str, int],
    node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    capacity: CapacityView,
) -> Placement:
    first = pools[0]
    status = capacity.status
    if not status.known:
        return Placement(
            first, None, False, f"first in placement order; headroom unknown: {status.reason}"
        )
    for i, pool in enumerate(pools):
        node = capacity.find_node(
            pod_node_selector(node_selector, pool),
            pod_tolerations(tolerations, pool)[0],
            requests,
        )
        if node is not None:
            if i == 0:
                return Placement(pool, node, True, f"node {node} has room")
            tried = ", ".join(p.name for p in pools[:i])
            return Placement(pool, node, True, f"no {tried} node has room, node {node} has")
    names = ", ".join(p.name for p in pools)
    return Placement(first, None, False, f"no node in {names} has {describe(requests)} free")


def describe(requests: Mapping[str, int]) -> str:
    parts = [
        f"{name} {format_milli(v, name)}" for name, v in requests.items() if v and name != POD_SLOT
    ]
    return ", ".join(parts) or "a pod slot"
