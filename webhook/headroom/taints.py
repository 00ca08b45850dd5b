"""Taints and tolerations, matched as the scheduler's TaintToleration plugin matches them.

A toleration tolerates a taint when its effect is empty or equal, its key is empty (only with
`Exists`) or equal, and its operator is `Exists` or `Equal` (the default) with an equal value.
Only `NoSchedule` and `NoExecute` taints keep a pod off a node; `PreferNoSchedule` is a wish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


# Named tuples, not frozen dataclasses: they key the node groups that every find_node looks up,
# and a tuple hashes, compares and sorts in C (a dataclass's __hash__ is Python).
class Taint(NamedTuple):
    key: str
    value: str
    effect: str


class Toleration(NamedTuple):
    key: str
    operator: str  # "Exists" or "Equal"
    value: str
    effect: str  # "" matches every effect


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    if toleration.operator == "Exists":
        return True
    return toleration.key == taint.key and toleration.value == taint.value


def tolerates_all(tolerations: Iterable[Toleration], taints: Iterable[Taint]) -> bool:
    """True when every blocking taint is tolerated by at least one toleration."""
    tolerations = tuple(tolerations)
    return all(
        any(tolerates(toleration, taint) for toleration in tolerations)
        for taint in taints
        if taint.effect in BLOCKING_EFFECTS
    )


def blocking_taints(raw: object) -> tuple[Taint, ...]:
    """`node.spec.taints` -> the NoSchedule/NoExecute taints, sorted."""
    if not isinstance(raw, list):
        return ()
    taints = {
        Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in raw
        if isinstance(t, Mapping)
    }
    return tuple(sorted(t for t in taints if t.effect in BLOCKING_EFFECTS))


def parse_tolerations(raw: Sequence[Mapping[str, Any]] | object) -> tuple[Toleration, ...]:
    """Pod-spec tolerations -> canonical, de-duplicated, sorted `Toleration`s.

    `tolerationSeconds` only matters for eviction, so it is dropped. An unknown operator
    tolerates nothing, as the API server would have refused it anyway.
    """
    if not isinstance(raw, list | tuple):
        return ()
    out = set()
    for t in raw:
        if not isinstance(t, Mapping):
            continue
        operator = str(t.get("operator") or "Equal")
        if operator not in ("Exists", "Equal"):
            continue
        value = "" if operator == "Exists" else str(t.get("value") or "")
        out.add(Toleration(str(t.get("key") or ""), operator, value, str(t.get("effect") or "")))
    return tuple(sorted(out))
