"""Decoding the API server's JSON (list pages, watch events, dump items), keeping what is read
of a Pod.

Pods are nearly all of a cluster's bytes (150,000 pods of ~3.6 KB), and podtier reads a handful
of their fields. msgspec decodes them into TypedDicts of those fields, as plain dicts, and skips
the rest (env, args, volumes, mounts, managedFields, image details) without making a Python
object of it. `PodFields` says how much is kept:

- `HEADROOM`: what `records.pod_record` reads: the namespace, name, resourceVersion, the
  `podtier.io/pool` and `podtier.io/node` annotations, the node, the containers' resources
  (and restart policy), the overhead, the node selector, the tolerations and the phase. About
  4x faster than parsing a pod whole, and much less to free. The tolerations are kept as
  their JSON (`msgspec.Raw`) until read through `pod_tolerations`: a few small dicts a pod,
  that `records` reads only of a pod waiting in its pool, not of the bound ones.
- `LISTENERS`: that, and what the pod listeners read (insight's census and `podtier pods`
  through `insight.facts`, learning's recorder through `learning.outcome`, the outlook's
  `headroom.running`): every label and annotation, the uid and creationTimestamp, the
  containers' names, the status's startTime, conditions and container states. The conditions
  are kept as their JSON too, until read through `pod_conditions`: they are a third of the
  objects these fields make (five small dicts a pod), and only the census reads them, once per
  pod, when it first sees it bound. A listener that reads another field must
  add it here (`tests/webhook/headroom/test_decode.py` compares what each listener makes of a
  pod decoded so and whole).
- `WHOLE`: everything (orjson).

Nodes and Namespaces (few) are always parsed whole, and so are watch ERROR events (their
Status). A pod whose shape the typed fields do not fit (a `spec` that is not an object ...) is
parsed whole too, so `records` and the listeners report it as they would have; JSON that is not
valid raises orjson's error either way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypedDict

import msgspec
import orjson

from podtier.webhook.headroom.dump import ManyDecoder, typed_many

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


# Typed all the way down where the fields are known: msgspec then fills each dict from its
# own field names instead of making every key, which decodes the listeners' fields ~10% faster.
class _Resources(TypedDict, total=False):
    requests: Any
    limits: Any


class _Toleration(TypedDict, total=False):  # every field but tolerationSeconds
    key: Any
    operator: Any
    value: Any
    effect: Any


class _Container(TypedDict, total=False):
    resources: _Resources
    restartPolicy: Any


class _Spec(TypedDict, total=False):
    nodeName: Any
    containers: list[_Container]
    initContainers: list[_Container]
    overhead: Any
    nodeSelector: Any
    tolerations: msgspec.Raw  # read through `pod_tolerations`


class _Status(TypedDict, total=False):
    phase: Any


class _Pod(TypedDict, total=False):
    kind: Any
    metadata: _Meta
    spec: _Spec
    status: _Status


class _RawPage(TypedDict, total=False):
    metadata: Any  # resourceVersion, continue
    items: list[msgspec.Raw]  # each item's JSON: decoded when it is taken (`decode_page`)


class _PodEvent(TypedDict, total=False):
    type: Any
    object: _Pod


# What the pod listeners read besides (see the module's docstring).


class _ListenedMeta(TypedDict, total=False):
    name: Any
    namespace: Any
    uid: Any
    resourceVersion: Any
    creationTimestamp: Any
    labels: Any
    annotations: Any


class _ListenedContainer(_Container, total=False):
    name: Any


class _ListenedSpec(TypedDict, total=False):
    nodeName: Any
    containers: list[_ListenedContainer]
    initContainers: list[_ListenedContainer]
    overhead: Any
    nodeSelector: Any
    tolerations: msgspec.Raw  # read through `pod_tolerations`


class _Condition(TypedDict, total=False):
    type: Any
    status: Any
    lastTransitionTime: Any


class _Terminated(TypedDict, total=False):
    exitCode: Any
    reason: Any
    startedAt: Any
    finishedAt: Any


class _ContainerState(TypedDict, total=False):
    terminated: _Terminated


class _ContainerStatus(TypedDict, total=False):
    name: Any
    state: _ContainerState


class _ListenedStatus(_Status, total=False):
    startTime: Any  # headroom.running: when the pod started
    conditions: msgspec.Raw  # read through `pod_conditions`
    containerStatuses: list[_ContainerStatus]


class _ListenedPod(TypedDict, total=False):
    kind: Any
    metadata: _ListenedMeta
    spec: _ListenedSpec
    status: _ListenedStatus


class _ListenedPodEvent(TypedDict, total=False):
    type: Any
    object: _ListenedPod


class PodFields(enum.Enum):
    """How much of each pod a decode keeps (see the module's docstring)."""

    HEADROOM = "headroom"
    LISTENERS = "listeners"
    WHOLE = "whole"


class _Decoders(NamedTuple):
    pod: msgspec.json.Decoder[Any]
    event: msgspec.json.Decoder[Any]
    pods: ManyDecoder  # a dump's run of pods (`headroom.dump.Batch`)


_DECODERS = {
    PodFields.HEADROOM: _Decoders(
        msgspec.json.Decoder(_Pod), msgspec.json.Decoder(_PodEvent), typed_many(_Pod)
    ),
    PodFields.LISTENERS: _Decoders(
        msgspec.json.Decoder(_ListenedPod),
        msgspec.json.Decoder(_ListenedPodEvent),
        typed_many(_ListenedPod),
    ),
}
_RAW_PAGE = msgspec.json.Decoder(_RawPage)


class Page(NamedTuple):
    metadata: Mapping[str, Any]  # resourceVersion, continue
    items: Iterator[Any]  # decoded as they are taken


def decode_page(kind: str, data: bytes | memoryview, fields: PodFields) -> Page:
    """A List page (`{"metadata": ..., "items": [...]}`). A Pod page's items are cut out as
    their JSON (`msgspec.Raw`: no copy) and each is decoded, keeping `fields`, when it is taken,
    so that it is applied while what was decoded of it is still in the CPU's cache: decoding a
    page's 500 pods first and applying them after took ~1.4x the CPU of a 150,000-pod first
    sync with serve's pod listeners (`bench/headroom_bench.py`)."""
    if kind == POD and fields in _DECODERS:
        try:
            page = _RAW_PAGE.decode(data)
        except msgspec.MsgspecError:
            pass  # not a List of the shape expected: parse it whole (below)
        else:
            raws = page.get("items") or []
            return Page(page.get("metadata") or {}, (decode_pod(raw, fields) for raw in raws))
    whole = orjson.loads(data)
    return Page(whole.get("metadata") or {}, iter(whole.get("items") or []))


def decode_event(kind: str, line: bytes | memoryview, fields: PodFields) -> dict[str, Any]:
    """One watch event (`{"type": ..., "object": ...}`); a pod's object keeps `fields`.
    An ERROR event's object is a Status, always parsed whole."""
    if kind == POD and fields in _DECODERS:
        try:
            event: dict[str, Any] = _DECODERS[fields].event.decode(line)
            if event.get("type") != "ERROR":
                return event
        except msgspec.MsgspecError:
            pass
    whole: dict[str, Any] = orjson.loads(line)
    return whole


def decode_pod(data: bytes | memoryview | msgspec.Raw, fields: PodFields) -> Any:
    """One pod object (a `kubectl get -o json` item, or a page's item), keeping `fields`."""
    if fields in _DECODERS:
        try:
            return _DECODERS[fields].pod.decode(data)
        except msgspec.MsgspecError:
            pass
    return orjson.loads(memoryview(data))


def pod_decoder(fields: PodFields) -> Callable[[bytes], Any]:
    """What decodes one pod's JSON (a dump's item) keeping `fields`."""
    return lambda raw: decode_pod(raw, fields)


def pods_decoder(fields: PodFields) -> ManyDecoder | None:
    """What decodes a dump's run of pods (`headroom.dump.Batch`) keeping `fields`, when they
    are typed; None for `WHOLE` (each pod is parsed alone)."""
    decoders = _DECODERS.get(fields)
    return decoders.pods if decoders is not None else None


_TOLERATIONS = msgspec.json.Decoder(list[_Toleration])
_CONDITIONS = msgspec.json.Decoder(list[_Condition])


def pod_tolerations(spec: Mapping[str, Any]) -> Any:
    """A pod's `spec.tolerations`, parsed, also when a typed decode kept them as their JSON."""
    return _kept_json(spec.get("tolerations"), _TOLERATIONS)


def pod_conditions(status: Mapping[str, Any]) -> Any:
    """A pod's `status.conditions`, parsed, also when a `LISTENERS` decode kept them as their
    JSON."""
    return _kept_json(status.get("conditions"), _CONDITIONS)


def _kept_json(value: Any, typed: msgspec.json.Decoder[Any]) -> Any:
    """`value`; or when a decode kept it as its JSON, that JSON decoded as the typed fields
    would have had it, or parsed whole when it is not of their shape (as the whole pod would
    have had it)."""
    if type(value) is not msgspec.Raw:
        return value
    try:
        return typed.decode(value)
    except msgspec.MsgspecError:
        return orjson.loads(memoryview(value))
