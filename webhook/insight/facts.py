"""What insight reads of a raw Pod (the JSON the API server sends): pure, no I/O, no clock.

`airflow_facts(raw, policy)` is None for a pod that is not an Airflow pod under the policy's
`airflowPods` selectors; otherwise the few fields the census, the scaling signal and cleanup
use. Times are Unix seconds read from the pod's RFC 3339 timestamps:

- `created`: `metadata.creationTimestamp`;
- `scheduled`: when the `PodScheduled` condition last turned True (its `lastTransitionTime`),
  i.e. when the scheduler bound the pod (read only for bound pods);
- `finished`: the latest `state.terminated.finishedAt` of its containers (read only for
  Succeeded and Failed pods; None while any is not terminated, or when none says).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from podtier.webhook.core.matching import is_airflow
from podtier.webhook.core.tiering import POOL_ANNOTATION, TIER_ANNOTATION
from podtier.webhook.headroom.decode import pod_conditions
from podtier.webhook.policy import Policy

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
KPO_LABEL = "kubernetes_pod_operator"
CHECKED_LABEL = "already_checked"


class PodFacts(NamedTuple):
    key: str  # namespace/name
    namespace: str
    name: str
    uid: str
    phase: str  # one of PHASES
    tier: str  # podtier.io/tier annotation, "" when absent
    pool: str  # podtier.io/pool annotation, else the policy pool its nodeSelector asks for
    bound: bool  # spec.nodeName is set
    created: float | None
    scheduled: float | None
    finished: float | None
    dag_id: str
    task_id: str
    labels: Mapping[str, str]


class PodPlace(NamedTuple):
    """Where an Airflow pod stands: what the census counts it by, read at every pod event."""

    namespace: str
    phase: str  # one of PHASES
    tier: str
    pool: str
    bound: bool


def airflow_place(raw: Mapping[str, Any], policy: Policy) -> PodPlace | None:
    """None for a pod that is not an Airflow pod; else the `PodFacts` fields it is counted by
    (the cheaper read, for every pod event of a cluster)."""
    meta = raw.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict) or not is_airflow(labels, policy.airflow_pods):
        return None
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        annotations = {}
    spec = raw.get("spec") or {}
    phase = (raw.get("status") or {}).get("phase")
    return PodPlace(
        namespace=str(meta.get("namespace") or ""),
        phase=phase if phase in PHASES else "Unknown" if phase else "Pending",
        tier=str(annotations.get(TIER_ANNOTATION) or ""),
        pool=str(annotations.get(POOL_ANNOTATION) or "")
        or pool_by_selector(spec.get("nodeSelector"), policy),
        bound=bool(spec.get("nodeName")),
    )


def airflow_facts(raw: Mapping[str, Any], policy: Policy) -> PodFacts | None:
    place = airflow_place(raw, policy)
    if place is None:
        return None
    meta = raw.get("metadata") or {}
    labels = meta["labels"]
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict):
        annotations = {}
    status = raw.get("status") or {}
    name = str(meta.get("name") or "")
    return PodFacts(
        key=f"{place.namespace}/{name}",
        namespace=place.namespace,
        name=name,
        uid=str(meta.get("uid") or ""),
        phase=place.phase,
        tier=place.tier,
        pool=place.pool,
        bound=place.bound,
        created=parse_time(meta.get("creationTimestamp")),
        scheduled=scheduled_at(status) if place.bound else None,
        finished=finished_at(status) if place.phase in FINISHED_PHASES else None,
        dag_id=str(annotations.get("dag_id") or labels.get("dag_id") or ""),
        task_id=str(annotations.get("task_id") or labels.get("task_id") or ""),
        labels=labels,
    )


def pool_by_selector(node_selector: object, policy: Policy) -> str:
    """The first policy pool whose node labels the pod's nodeSelector all asks for; "" if none."""
    if not isinstance(node_selector, dict) or not node_selector:
        return ""
    for pool in policy.pools.values():
        if all(node_selector.get(key) == value for key, value in pool.node_selector.items()):
            return pool.name
    return ""


def is_unchecked_kpo(labels: Mapping[str, str]) -> bool:
    """A KubernetesPodOperator pod Airflow has not yet looked at: never to be deleted."""
    return labels.get(KPO_LABEL) == "True" and labels.get(CHECKED_LABEL) != "True"


def finished_at(status: Mapping[str, Any]) -> float | None:
    latest: float | None = None
    statuses = status.get("containerStatuses") or ()
    for container in statuses:
        terminated = ((container or {}).get("state") or {}).get("terminated")
        when = parse_time((terminated or {}).get("finishedAt"))
        if when is None:
            return None  # a container still running (or never said): not finished
        latest = when if latest is None else max(latest, when)
    return latest


def scheduled_at(status: Mapping[str, Any]) -> float | None:
    conditions = pod_conditions(status) or ()
    # From the end: the kubelet writes PodScheduled last, and a condition type appears once.
    for condition in reversed(conditions) if isinstance(conditions, list) else conditions:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "PodScheduled"
            and condition.get("status") == "True"
        ):
            return parse_time(condition.get("lastTransitionTime"))
    return None


def parse_time(value: object) -> float | None:
    """RFC 3339 (`2026-11-26T06:42:50Z`, with or without fractions) to Unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()  # Python >= 3.11 reads "Z" itself
    except ValueError:
        return None
