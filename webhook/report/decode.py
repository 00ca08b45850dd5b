"""What a report decodes of a Pod and a PodMetrics item: the fields `report.facts` reads, no
more (msgspec, as `headroom.decode` does for headroom and the pod listeners).

A history dump is ~10 KB a pod (env, args, volumes, mounts, images, managedFields); the report
reads its labels and annotations, name, namespace and creation time, the containers' resources
(and restart policy), overhead, node and nodeSelector, and the status's phase, start time,
conditions and container states. Decoding those alone is several times faster than parsing the
pod whole, and what is skipped never becomes a Python object. An object whose shape the typed
fields do not fit (a `status` that is not an object ...) is parsed whole, so `report.facts`
reports it as it would have. `tests/webhook/report/test_decode.py` compares what the facts make
of objects decoded so and whole: a field `report.facts` starts to read must be added here.
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec
import orjson

from podtier.webhook.headroom.dump import typed_many


class _Meta(TypedDict, total=False):
    name: Any
    namespace: Any
    creationTimestamp: Any
    labels: Any
    annotations: Any


class _Container(TypedDict, total=False):
    name: Any
    resources: Any
    restartPolicy: Any


class _Spec(TypedDict, total=False):
    nodeName: Any
    nodeSelector: Any
    containers: list[_Container]
    initContainers: list[_Container]
    overhead: Any


class _Terminated(TypedDict, total=False):
    reason: Any
    finishedAt: Any


class _State(TypedDict, total=False):
    terminated: _Terminated


class _ContainerStatus(TypedDict, total=False):
    state: _State
    lastState: _State


class _Condition(TypedDict, total=False):
    type: Any
    status: Any
    lastTransitionTime: Any


class _Status(TypedDict, total=False):
    phase: Any
    startTime: Any
    conditions: list[_Condition]
    containerStatuses: list[_ContainerStatus]


class _Pod(TypedDict, total=False):
    kind: Any  # a dump's runs of pods are checked by it (`headroom.dump.Batch`)
    metadata: _Meta
    spec: _Spec
    status: _Status


class _MetricsMeta(TypedDict, total=False):
    name: Any
    namespace: Any


class _ContainerMetrics(TypedDict, total=False):
    usage: Any


class _PodMetrics(TypedDict, total=False):
    kind: Any
    metadata: _MetricsMeta
    containers: list[_ContainerMetrics]
    timestamp: Any


_POD = msgspec.json.Decoder(_Pod)
_POD_METRICS = msgspec.json.Decoder(_PodMetrics)
# A dump's runs of each (`headroom.dump.Batch`); an object of another shape is decoded alone.
decode_pods = typed_many(_Pod)
decode_pods_metrics = typed_many(_PodMetrics)


def decode_pod(data: bytes) -> Any:
    """A Pod item, keeping what `report.facts.pod_run` reads."""
    try:
        return _POD.decode(data)
    except msgspec.ValidationError:
        return orjson.loads(data)  # not the typed shape: whole, for the facts to report


def decode_pod_metrics(data: bytes) -> Any:
    """A PodMetrics item, keeping what `report.facts.metrics_usage` reads."""
    try:
        return _POD_METRICS.decode(data)
    except msgspec.ValidationError:
        return orjson.loads(data)
