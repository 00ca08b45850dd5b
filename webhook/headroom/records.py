"""What headroom keeps of a Node or a Pod, read from the raw JSON the API server sends.

Pure functions of a parsed object: no I/O, no clock. A node keeps its name, labels,
blocking taints, Ready condition, `unschedulable` and allocatable; a pod keeps where its
requests count (its node, or its podtier pool while Pending) and its effective requests as
`webhook.core.resources.effective_requests` computes them. Identical request maps are shared, so
150,000 pods of a few shapes cost a few dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from podtier.webhook.core.resources import (
    ResourceError,
    Resources,
    effective_requests,
    parse_resource_map,
    whole_units,
)
from podtier.webhook.core.tiering import NODE_ANNOTATION, POOL_ANNOTATION
from podtier.webhook.headroom.decode import pod_tolerations
from podtier.webhook.headroom.taints import Taint, Toleration, blocking_taints, parse_tolerations

TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})
_NOTHING: Resources = {}  # shared: what a finished pod requests

# Resource maps shared between pods (and nodes) of the same shape, keyed by the JSON they were
# read from. Users of a record must not modify its resource maps.
_REQUEST_CACHE: dict[bytes, Resources] = {}
_REQUEST_CACHE_LIMIT = 20_000


class RecordError(ValueError):
    """An object headroom cannot read; the message names the object and the field."""


class NodeRecord(NamedTuple):
    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    ready: bool
    unschedulable: bool
    allocatable: Resources

    @property
    def schedulable(self) -> bool:
        return self.ready and not self.unschedulable


class PodRecord(NamedTuple):
    """Immutable like a frozen dataclass, but built 3-4x faster: one is made per watch event."""

    key: str  # namespace/name
    node: str  # spec.nodeName, "" while unbound
    active: bool  # not Succeeded or Failed
    requests: Resources
    pool: str  # podtier.io/pool annotation, "" when absent
    node_selector: tuple[tuple[str, str], ...]  # only read for pending pods with a pool
    tolerations: tuple[Toleration, ...]  # likewise
    counted_on: str = ""  # likewise: the podtier.io/node annotation, the node podtier counted

    @property
    def uses_node(self) -> bool:
        return self.active and bool(self.node)

    @property
    def waits_in_pool(self) -> bool:
        """Pending, not yet bound, and placed by podtier: it will land in its pool."""
        return self.active and not self.node and bool(self.pool)


def object_name(raw: Mapping[str, Any]) -> str:
    meta = raw.get("metadata") or {}
    return str(meta.get("name") or "")


def namespace_labels(raw: Mapping[str, Any]) -> dict[str, str]:
    """A Namespace's labels (with `kubernetes.io/metadata.name`, which the API server always
    sets)."""
    name = object_name(raw)
    if not name:
        raise RecordError("Namespace without metadata.name")
    labels = (raw.get("metadata") or {}).get("labels") or {}
    if not isinstance(labels, Mapping):
        raise RecordError(f"Namespace {name}: metadata.labels is not a map")
    out = {str(k): str(v) for k, v in labels.items()}
    out.setdefault("kubernetes.io/metadata.name", name)
    return out


def pod_key(raw: Mapping[str, Any]) -> str:
    meta = raw.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def node_record(raw: Mapping[str, Any]) -> NodeRecord:
    name = object_name(raw)
    if not name:
        raise RecordError("Node without metadata.name")
    meta = raw.get("metadata") or {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    try:
        allocatable = _allocatable(status.get("allocatable"))
    except ResourceError as err:
        raise RecordError(f"Node {name}: {err}") from None
    labels = meta.get("labels") or {}
    return NodeRecord(
        name=name,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        taints=blocking_taints(spec.get("taints")),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        allocatable=allocatable,
    )


def pod_record(raw: Mapping[str, Any]) -> PodRecord:
    meta = raw.get("metadata") or {}
    key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    spec = raw.get("spec") or {}
    status = raw.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    if phase is not None and not isinstance(phase, str):
        raise RecordError(f"Pod {key}: status.phase is not a string: {phase!r}")
    annotations = meta.get("annotations")
    pool = annotations.get(POOL_ANNOTATION) if isinstance(annotations, dict) else None
    pool = str(pool) if pool else ""
    node = spec.get("nodeName")
    node = str(node) if node else ""
    if phase in TERMINATED_PHASES:
        return PodRecord(key, node, False, _NOTHING, pool, (), ())
    try:
        requests = spec_requests(spec)
    except ResourceError as err:
        raise RecordError(f"Pod {key}: {err}") from None
    if node or not pool:
        return PodRecord(key, node, True, requests, pool, (), ())
    selector = spec.get("nodeSelector") or {}  # pending and placed by podtier: held in its pool
    counted_on = annotations.get(NODE_ANNOTATION) if isinstance(annotations, dict) else None
    return PodRecord(
        key,
        node,
        True,
        requests,
        pool,
        tuple(sorted((str(k), str(v)) for k, v in selector.items())),
        parse_tolerations(pod_tolerations(spec)),
        counted_on if isinstance(counted_on, str) else "",
    )


def spec_requests(spec: Mapping[str, Any]) -> Resources:
    """`effective_requests`, memoised on the parts of the spec it reads."""
    shape = orjson.dumps(
        (
            [_resource_part(c) for c in spec.get("containers") or ()],
            [_resource_part(c) for c in spec.get("initContainers") or ()],
            spec.get("overhead"),
        )
    )
    cached = _REQUEST_CACHE.get(shape)
    if cached is None:
        cached = effective_requests(spec)
        if len(_REQUEST_CACHE) >= _REQUEST_CACHE_LIMIT:
            _REQUEST_CACHE.clear()
        _REQUEST_CACHE[shape] = cached
    return cached


def _allocatable(raw: object) -> Resources:
    shape = orjson.dumps(raw)
    cached = _REQUEST_CACHE.get(shape)
    if cached is None:
        # whole units as the scheduler counts them (memory in bytes), as for pods' requests
        cached = whole_units(parse_resource_map(raw, "status.allocatable"))
        if len(_REQUEST_CACHE) >= _REQUEST_CACHE_LIMIT:
            _REQUEST_CACHE.clear()
        _REQUEST_CACHE[shape] = cached
    return cached


def _resource_part(container: object) -> object:
    if not isinstance(container, dict):
        return container  # effective_requests reports it
    resources = container.get("resources")
    requests = resources.get("requests") if isinstance(resources, dict) else resources
    return (requests, container.get("restartPolicy"))
