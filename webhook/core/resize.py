"""What an UPDATE of a pod changes in its container resources. Pure.

An in-place resize (the `pods/resize` subresource, on by default since Kubernetes 1.33; a plain
UPDATE of the pod on 1.27-1.32 clusters that turn InPlacePodVerticalScaling on) changes a
running pod's requests and limits. The validating webhook judges the new resources by the limits
the pod was admitted under:

    UPDATE ─► podtier.io/ annotations rewritten? ─► denied (tier, escalation: written once)
       ├─► container resources unchanged? ─► allowed at once (labels, Airflow's patches,
       │                                     status: no pod is parsed)
       └─► changed: the new pod judged by the OLD pod's tier and sealed escalation (an UPDATE
           that rewrites `podtier.io/tier` gains nothing), plus every limit it removes
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podtier.webhook.core.pod import MAIN_CONTAINER, PodView
from podtier.webhook.core.policy import Quantity
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.validation import Violation

RESIZE_SUBRESOURCE = "resize"
PODTIER_PREFIX = "podtier.io/"


def resources_changed(old: object, new: object) -> bool:
    """True unless both pods have the same containers with the same `resources` (compared as
    the API server sends them: no pod is parsed, so unrelated updates cost a few lookups)."""
    return bool(_resources(old) != _resources(new))


def rewritten_annotations(old: object, new: object) -> list[str]:
    """podtier's annotations (`podtier.io/...`) an UPDATE adds, changes or removes, as
    "key: old -> new" lines. They are written at creation only: changed later, the tier or the
    escalation would unlock a bigger resize in a second step."""
    before, after = _podtier_annotations(old), _podtier_annotations(new)
    return [
        f"{key}: {_shown(before.get(key))} -> {_shown(after.get(key))}"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def removed_limits(
    old: PodView,
    new: PodView,
    tier_limits: Mapping[str, Quantity],
    ceilings: Mapping[str, Quantity],
) -> list[Violation]:
    """Limits the old pod had and the new one drops, for resources that are capped (the tier's
    limits for the main container, the ceilings for every container): without its limit a
    container may use the whole node."""
    found = []
    before = {(c.name, c.init): c for c in (*old.init_containers, *old.containers)}
    for container in (*new.init_containers, *new.containers):
        previous = before.get((container.name, container.init))
        if previous is None:
            continue
        caps = dict(ceilings)
        if container.name == MAIN_CONTAINER and not container.init:
            for name, quantity in tier_limits.items():
                if name not in caps or quantity.milli < caps[name].milli:
                    caps[name] = quantity
        for resource, value in previous.limits.items():
            if resource in container.limits or resource not in caps:
                continue
            cap = caps[resource]
            message = (
                f"container {container.name}: {resource} limit removed (was "
                f"{format_milli(value, resource)}; the limit is {cap.text})"
            )
            found.append(Violation(container.name, resource, 0, cap.milli, message))
    return found


def _podtier_annotations(pod: object) -> dict[str, object]:
    metadata = pod.get("metadata") if isinstance(pod, Mapping) else None
    notes = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(notes, Mapping):
        return {}
    return {k: v for k, v in notes.items() if isinstance(k, str) and k.startswith(PODTIER_PREFIX)}


def _shown(value: object) -> str:
    if value is None:
        return "(none)"
    text = str(value)
    return f'"{text}"' if len(text) <= 40 else f'"{text[:37]}..."'


def _resources(pod: object) -> Any:
    if not isinstance(pod, Mapping):
        return pod
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return spec
    return tuple(
        [_container_resources(c) for c in spec.get(key) or ()]
        if isinstance(spec.get(key), list)
        else spec.get(key)
        for key in ("containers", "initContainers")
    ) + (spec.get("resources"),)


def _container_resources(container: object) -> Any:
    if not isinstance(container, Mapping):
        return container
    return container.get("name"), container.get("resources")
