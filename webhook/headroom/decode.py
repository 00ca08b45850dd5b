"""Decoding the API server's JSON (list pages, watch events, dump items), keeping what
headroom reads of a Pod.

Pods are nearly all of a cluster's bytes (150,000 pods of ~3.6 KB), and headroom reads a
handful of their fields: `records.pod_record` takes the namespace, name, resourceVersion, the
`podtier.io/pool` and `podtier.io/node` annotations, the node, the containers' resources (and
restart policy), the overhead, the node selector, the tolerations and the phase. A *lean*
decode (msgspec into TypedDicts of those fields) builds only those, as plain dicts, and skips
the rest (env, args, volumes, status details) without making a Python object of it: about 4x
faster than parsing a pod whole, and much less to free.

Everything else is parsed whole (orjson): Nodes and Namespaces (few), watch ERROR events (their
Status), and pods when a pod listener (the insight census) reads more of them. A pod whose
shape the lean types do not fit (a `spec` that is not an object ...) is parsed whole too, so
`records` reports it as it would have; JSON that is not valid raises orjson's error either way.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec
import orjson

POD = "Pod"

# The annotations headroom reads (records: the pool, and the node podtier counted), under their
# real names.
_Annotations = TypedDict(
    "_Annotations", {"podtier.io/pool": Any, "podtier.io/node": Any}, total=False
)


class _Meta(TypedDict, total=False):
    name: Any
    namespace: Any
    resourceVersion: Any
    annotations: _Annotations


class _Container(TypedDict, total=False):
    resources: Any
    restartPolicy: Any


class _Spec(TypedDict, total=False):
    nodeName: Any
    containers: list[_Container]
    initContainers: list[_Container]
    overhead: Any
    nodeSelector: Any
    tolerations: Any


class _Status(TypedDict, total=False):
    phase: Any


class _Pod(TypedDict, total=False):
    kind: Any
    metadata: _Meta
    spec: _Spec
    status: _Status


class _PodPage(TypedDict, total=False):
    kind: Any
    metadata: Any  # resourceVersion, continue
    items: list[_Pod]


class _PodEvent(TypedDict, total=False):
    type: Any
    object: _Pod


_POD = msgspec.json.Decoder(_Pod)
_POD_PAGE = msgspec.json.Decoder(_PodPage)
_POD_EVENT = msgspec.json.Decoder(_PodEvent)


def decode_page(kind: str, data: bytes | memoryview, lean: bool) -> dict[str, Any]:
    """A List page (`{"metadata": ..., "items": [...]}`); pods lean when `lean`."""
    if lean and kind == POD:
        try:
            page: dict[str, Any] = _POD_PAGE.decode(data)
            return page
        except msgspec.MsgspecError:
            pass  # not the shape the lean types expect: parse it whole (below)
    whole: dict[str, Any] = orjson.loads(data)
    return whole


def decode_event(kind: str, line: bytes | memoryview, lean: bool) -> dict[str, Any]:
    """One watch event (`{"type": ..., "object": ...}`); a pod's object lean when `lean`.
    An ERROR event's object is a Status, always parsed whole."""
    if lean and kind == POD:
        try:
            event: dict[str, Any] = _POD_EVENT.decode(line)
            if event.get("type") != "ERROR":
                return event
        except msgspec.MsgspecError:
            pass
    whole: dict[str, Any] = orjson.loads(line)
    return whole


def decode_pod(data: bytes | memoryview, lean: bool) -> Any:
    """One pod object (a `kubectl get -o json` item); lean when `lean`."""
    if lean:
        try:
            return _POD.decode(data)
        except msgspec.MsgspecError:
            pass
    return orjson.loads(data)
