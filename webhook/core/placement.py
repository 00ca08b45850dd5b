"""Which pool a pod goes to: the first pool in placement order with a node that fits it now,
and how the pod is told so: pinned (the pool's nodeSelector and tolerations) or preferred (node
affinity over every allowed pool, the scheduler choosing; see `pod_affinity`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podtier.webhook.core.capacity import ROOM_COUNT_LIMIT, Borrowed, CapacityView
from podtier.webhook.core.policy import Pool
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.resources import POD_SLOT


@dataclass(frozen=True)
class Placement:
    pool: Pool
    node: str | None  # the node that fits; None when headroom is unknown or nothing fits
    fits: bool
    why: str


def pod_node_selector(existing: Mapping[str, str], pool: Pool) -> dict[str, str]:
    """The pool owns its node-label keys; the pod's other nodeSelector keys are kept."""
    return {**existing, **pool.node_selector}


def prefer_node_selector(
    existing: Mapping[str, str], managed: Sequence[Pool]
) -> tuple[dict[str, str], dict[str, str]]:
    """In prefer mode: (the pod's nodeSelector to keep, the pairs taken out). The node-label
    keys of every pool podtier manages are podtier's: left on the pod (Airflow's template writes
    `node-type: worker`), they would confine the scheduler to one pool whatever the affinity
    allows. The pod's other keys stay."""
    keys = {key for pool in managed for key in pool.node_selector}
    kept = {key: value for key, value in existing.items() if key not in keys}
    removed = {key: value for key, value in existing.items() if key in keys}
    return kept, removed


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
    borrowed = _borrow(pools, requests, node_selector, tolerations, capacity)
    if borrowed is not None:
        pool, room = borrowed
        return Placement(
            pool,
            room.node,
            True,
            f"no {names} node of this replica's share has room; pool {pool.name} has the most "
            f"in the cluster (room for {_count(room.room)} such pods), node {room.node} has",
        )
    return Placement(first, None, False, f"no node in {names} has {describe(requests)} free")


def _borrow(
    pools: Sequence[Pool],
    requests: Mapping[str, int],
    node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    capacity: CapacityView,
) -> tuple[Pool, Borrowed] | None:
    """With several replicas, when no pool has room in this replica's share: the pool with
    the most room among all its nodes (the first in placement order on a tie).

    Another replica may be promising that room at this moment, and the scheduler places by
    pool, not by node: the pool with the most room is the one where both promises fit."""
    best: tuple[Pool, Borrowed] | None = None
    for pool in pools:
        room = capacity.find_elsewhere(
            pod_node_selector(node_selector, pool),
            pod_tolerations(tolerations, pool)[0],
            requests,
        )
        if room is not None and (best is None or room.room > best[1].room):
            best = pool, room
    return best


def _count(room: int) -> str:
    return f"{room}+" if room >= ROOM_COUNT_LIMIT else str(room)


def describe(requests: Mapping[str, int]) -> str:
    parts = [
        f"{name} {format_milli(v, name)}" for name, v in requests.items() if v and name != POD_SLOT
    ]
    return ", ".join(parts) or "a pod slot"


def pool_tolerations(
    existing: Sequence[Mapping[str, Any]], pools: Sequence[Pool]
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """`pod_tolerations` over several pools: every allowed pool's tolerations, once each."""
    tolerations, added = list(existing), []
    for pool in pools:
        tolerations, more = pod_tolerations(tolerations, pool)
        added += more
    return tolerations, added


def preference_weight(rank: int) -> int:
    """Preferred-affinity weight of the pool at `rank` in placement order: 100, 50, 25, ... 1."""
    return max(1, 100 >> rank)


def _pool_term(pool: Pool) -> dict[str, Any]:
    return {
        "matchExpressions": [
            {"key": key, "operator": "In", "values": [value]}
            for key, value in sorted(pool.node_selector.items())
        ]
    }


def pod_affinity(
    existing: Mapping[str, Any] | None, pools: Sequence[Pool], predicted: Pool | None = None
) -> dict[str, Any]:
    """The pod's `affinity` in prefer mode.

    Required node affinity: one node selector term per allowed pool (terms are ORed), unless
    the pod brings its own required node affinity (kept as is: explicit placement wins) or a
    pool has no node selector (it allows any node). Preferred: one term per pool, weighted in
    placement order from the pool podtier `predicted` (its headroom found room there), added
    where missing. A pod podtier sent to the second pool because the first is full prefers
    the second: in a burst the scheduler would otherwise hand the first pool's last room to
    whichever pod it binds first, not to the pods podtier counted there. Applying it to its
    own output changes nothing, so a reinvocation yields an empty patch."""
    ranked = list(pools)
    if predicted is not None and predicted in ranked:
        ranked = [predicted, *(pool for pool in ranked if pool != predicted)]
    affinity = dict(existing or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    if not node_affinity.get(required) and all(pool.node_selector for pool in pools):
        node_affinity[required] = {"nodeSelectorTerms": [_pool_term(pool) for pool in pools]}
    terms = list(node_affinity.get(preferred) or [])
    for rank, pool in enumerate(ranked):
        if not pool.node_selector:
            continue
        term = {"weight": preference_weight(rank), "preference": _pool_term(pool)}
        if term not in terms:
            terms.append(term)
    if terms:
        node_affinity[preferred] = terms
    affinity["nodeAffinity"] = node_affinity
    return affinity
