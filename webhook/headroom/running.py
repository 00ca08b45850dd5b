"""The pods running on each node, with the Airflow task each runs and when it started: what
`CapacityView.outlook` hands the decision for judging when a node frees room (`core.waiting`).

A pod listener of the tracker (`ClusterHeadroom.add_pod_listener`): it keeps the bound pods
that are not finished, and forgets a pod once it finishes or goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from podtier.webhook.core.capacity import RunningPod
from podtier.webhook.core.profile import task_instance
from podtier.webhook.core.resources import ResourceError
from podtier.webhook.headroom.records import TERMINATED_PHASES, RecordError, spec_requests


class RunningPods:
    def __init__(self) -> None:
        self._where: dict[str, str] = {}  # pod key -> node
        self.by_node: dict[str, dict[str, RunningPod]] = {}

    def __call__(self, event_type: str, key: str, raw: Mapping[str, Any] | None) -> None:
        self._forget(key)
        if event_type == "DELETED" or raw is None:
            return
        pod = running_pod(raw)
        if pod is not None:
            self._where[key] = pod.node
            self.by_node.setdefault(pod.node, {})[key] = pod

    def on(self, node: str) -> tuple[RunningPod, ...]:
        return tuple((self.by_node.get(node) or {}).values())

    def _forget(self, key: str) -> None:
        node = self._where.pop(key, None)
        if node is not None:
            pods = self.by_node.get(node)
            if pods is not None:
                pods.pop(key, None)
                if not pods:
                    del self.by_node[node]


def running_pod(raw: Mapping[str, Any]) -> RunningPod | None:
    """The pod as the outlook tells it, or None when it is not bound or has finished."""
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    node = spec.get("nodeName") if isinstance(spec, Mapping) else None
    if not node or not isinstance(status, Mapping) or status.get("phase") in TERMINATED_PHASES:
        return None
    meta = raw.get("metadata") or {}
    labels, annotations = meta.get("labels"), meta.get("annotations")
    instance = task_instance(
        str(meta.get("namespace") or ""),
        labels if isinstance(labels, Mapping) else {},
        annotations if isinstance(annotations, Mapping) else {},
    )
    try:
        requests = spec_requests(spec)
    except (ResourceError, RecordError):
        return None
    return RunningPod(
        node=str(node),
        task=instance.key if instance is not None else None,
        started_at=_unix(status.get("startTime")),
        requests=requests,
    )


def _unix(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
