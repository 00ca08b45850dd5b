"""PodView: the parts of a Pod that the decision reads, parsed once, with field paths in errors.

Airflow identity is read from annotations first (they hold the raw values) and from labels
second (KubernetesPodOperator pods carry only labels, and label values are sanitized).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any, TypedDict, TypeGuard

from podtier.webhook.core.resources import (
    ResourceError,
    Resources,
    combine_requests,
    parse_resource_map,
)

MAIN_CONTAINER = "base"
AIRFLOW_IDENTITY_KEYS = ("dag_id", "task_id", "run_id", "try_number", "map_index")
TOLERATION_STRING_FIELDS = ("key", "operator", "value", "effect")


class PodError(ValueError):
    """The pod cannot be read; the message names the field path and the value."""


@dataclass(frozen=True)
class ContainerView:
    name: str
    index: int
    init: bool
    sidecar: bool  # an init container with restartPolicy Always
    requests: Resources
    limits: Resources

    @property
    def path(self) -> str:
        return f"spec.{'initContainers' if self.init else 'containers'}[{self.index}]"


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    airflow: Mapping[str, str]
    containers: tuple[ContainerView, ...]
    init_containers: tuple[ContainerView, ...]
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    raw: Mapping[str, Any]
    # Labels of the pod's namespace, when the edge knows them (the AdmissionReview does not
    # carry them); None when unknown. Read by rules with a `namespaceSelector`.
    namespace_labels: Mapping[str, str] | None = None

    @property
    def main(self) -> ContainerView | None:
        for container in self.containers:
            if container.name == MAIN_CONTAINER:
                return container
        return None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def label_or_annotation(self, key: str) -> str | None:
        value = self.labels.get(key)
        if value is None:
            value = self.annotations.get(key)
        return value


def view_pod(
    pod: object,
    namespace: str = "",
    name: str = "",
    namespace_labels: Mapping[str, str] | None = None,
) -> PodView:
    """Parse a Pod object (a JSON dict). `namespace`/`name` fill in what the AdmissionReview
    request knows when the object itself leaves them out (generateName pods);
    `namespace_labels` are the labels of its namespace, when the caller knows them."""
    if not isinstance(pod, Mapping):
        raise PodError(f"object: expected a Pod object, got {_kind(pod)}")
    _mapping(pod.get("metadata"), "metadata")
    spec = _mapping(pod.get("spec"), "spec")
    identity = pod_identity(pod, namespace, name)
    try:
        containers = _containers(spec, "containers", init=False)
        init_containers = _containers(spec, "initContainers", init=True)
        parse_resource_map(spec.get("overhead"), "spec.overhead")
    except ResourceError as err:
        raise PodError(str(err)) from None
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = []
    if not isinstance(tolerations, list) or not all(_is_map(t) for t in tolerations):
        raise PodError("spec.tolerations: expected a list of objects")
    for i, toleration in enumerate(tolerations):
        for key in TOLERATION_STRING_FIELDS:
            value = toleration.get(key)
            if value is not None and not isinstance(value, str):
                path = f"spec.tolerations[{i}].{key}"
                raise PodError(f"{path}: expected a string, got {_kind(value)}")
    return PodView(
        **identity,
        containers=containers,
        init_containers=init_containers,
        node_selector=_string_map(spec.get("nodeSelector"), "spec.nodeSelector"),
        tolerations=tuple(tolerations),
        raw=pod,
        namespace_labels=namespace_labels,
    )


def identity_view(
    namespace: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str]
) -> PodView:
    """A pod known by its identity alone (no spec): what rule matching reads, for a finished
    pod's outcome or a task's profile outside admission."""
    return PodView(
        namespace=namespace,
        name=name,
        labels=labels,
        annotations=annotations,
        airflow={},
        containers=(),
        init_containers=(),
        node_selector={},
        tolerations=(),
        raw={},
    )


class PodIdentity(TypedDict):
    namespace: str
    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    airflow: Mapping[str, str]


def pod_identity(pod: Mapping[str, Any], namespace: str = "", name: str = "") -> PodIdentity:
    """The PodView fields that say which pod this is: where, its name, its labels and
    annotations, its Airflow identity. (`view_pod` reads the rest, from the spec.)"""
    metadata = _mapping(pod.get("metadata"), "metadata")
    labels = _string_map(metadata.get("labels"), "metadata.labels")
    annotations = _string_map(metadata.get("annotations"), "metadata.annotations")
    keys = AIRFLOW_IDENTITY_KEYS  # annotation, else label, of each (the gets run in C)
    found = zip(keys, map(annotations.get, keys, map(labels.get, keys)), strict=True)
    airflow = {key: value for key, value in found if value is not None}
    return {
        "namespace": str(metadata.get("namespace") or namespace),
        "name": str(metadata.get("name") or name or metadata.get("generateName") or ""),
        "labels": labels,
        "annotations": annotations,
        "airflow": airflow,
    }


def with_identity(
    pod: PodView,
    identity: PodIdentity,
    raw: Mapping[str, Any],
    namespace_labels: Mapping[str, str] | None,
) -> PodView:
    """`pod`'s view for another pod with the same spec: that pod's identity, object and
    namespace labels. The fields are copied at once (a frozen dataclass's `__init__` sets each
    one through `object.__setattr__`, which costs more than the rest of a memo's answer)."""
    other: PodView = object.__new__(PodView)
    fields = other.__dict__
    fields.update(pod.__dict__)
    fields.update(identity)
    fields["raw"] = raw
    fields["namespace_labels"] = namespace_labels
    return other


def pod_requests(pod: PodView, main_requests: Mapping[str, int] | None = None) -> Resources:
    """The scheduler's effective requests of this pod; with `main_requests`, as they will be
    once the main container has those requests."""
    app = [
        main_requests if main_requests is not None and c.name == MAIN_CONTAINER else c.requests
        for c in pod.containers
    ]
    init = [(c.requests, c.sidecar) for c in pod.init_containers]
    spec = pod.raw.get("spec") or {}
    try:
        overhead = parse_resource_map(spec.get("overhead"), "spec.overhead")
    except ResourceError as err:
        raise PodError(str(err)) from None
    return combine_requests(app, init, overhead)


def _containers(spec: Mapping[str, Any], key: str, init: bool) -> tuple[ContainerView, ...]:
    raw = spec.get(key)
    if raw is None:
        if init:
            return ()
        raise PodError(f"spec.{key}: missing")
    if not isinstance(raw, list):
        raise PodError(f"spec.{key}: expected a list, got {_kind(raw)}")
    views = []
    for i, container in enumerate(raw):
        path = f"spec.{key}[{i}]"
        container = _mapping(container, path)
        name = container.get("name")
        if not isinstance(name, str):
            raise PodError(f"{path}.name: expected a string, got {_kind(name)}")
        resources = _mapping(container.get("resources"), f"{path}.resources")
        views.append(
            ContainerView(
                name=name,
                index=i,
                init=init,
                sidecar=init and container.get("restartPolicy") == "Always",
                requests=parse_resource_map(
                    resources.get("requests"), f"{path}.resources.requests"
                ),
                limits=parse_resource_map(resources.get("limits"), f"{path}.resources.limits"),
            )
        )
    return tuple(views)


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not _is_map(value):
        raise PodError(f"{path}: expected an object, got {_kind(value)}")
    return value


def _string_map(value: object, path: str) -> Mapping[str, str]:
    if type(value) is dict and all(map(isinstance, value.values(), repeat(str))):
        return value  # the usual case, checked in C
    mapping = _mapping(value, path)
    for key, item in mapping.items():
        if not isinstance(item, str):
            raise PodError(f"{path}.{key}: expected a string, got {_kind(item)}")
    return mapping


def _is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    # Decoded JSON objects are dicts: a type check first, the (slower) ABC check for the rest.
    return type(value) is dict or isinstance(value, Mapping)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
