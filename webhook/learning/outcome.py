"""What a finished Airflow pod says about its task: pure, read from the raw Pod (JSON).

A pod has an outcome once its `base` container is terminated (`state.terminated`: Airflow's
pods never restart, so the reason, `OOMKilled` among others, is there and not in
`lastState`). The outcome keeps the exit code and reason, the run time (the container's
`startedAt` to `finishedAt`), the base container's requests and limits, podtier's tier and pool
annotations, and the memory limit podtier raised the pod to after an earlier OOM kill.
Usage (memory peak, cpu p95) is added later, by the PodMetrics sampler or Prometheus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from podtier.webhook.core.decide import escalated_memory
from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.core.pod import MAIN_CONTAINER
from podtier.webhook.core.profile import MEMORY_UNIT, TaskInstance, task_instance
from podtier.webhook.core.resources import ResourceError, Resources, parse_resource_map
from podtier.webhook.core.tiering import POOL_ANNOTATION, TIER_ANNOTATION
from podtier.webhook.insight.facts import (
    is_airflow,
    parse_time,
    pool_by_selector,
)
from podtier.webhook.policy import Policy


@dataclass(frozen=True)
class Outcome:
    instance: TaskInstance
    pod: str  # namespace/name
    uid: str
    exit_code: int | None
    reason: str
    oom_killed: bool
    started_at: float | None  # Unix seconds
    finished_at: float
    requests: Resources  # the base container's, milli-units
    limits: Resources
    tier: str
    pool: str
    escalated_bytes: int | None
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    memory_peak_bytes: int | None = None
    cpu_p95_milli: int | None = None
    # First seen already finished (a restart's first list): maybe recorded before.
    seen_finished: bool = False

    @property
    def run_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def memory_limit_bytes(self) -> int | None:
        limit = self.limits.get("memory")
        return limit // MEMORY_UNIT if limit else None


def base_terminated(raw: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The `state.terminated` of the pod's base container, or None while it has not ended."""
    status = raw.get("status")
    if not isinstance(status, dict):
        return None
    for container in status.get("containerStatuses") or ():
        if isinstance(container, dict) and container.get("name") == MAIN_CONTAINER:
            state = container.get("state")
            terminated = state.get("terminated") if isinstance(state, dict) else None
            return terminated if isinstance(terminated, dict) else None
    return None


def outcome_of(
    raw: Mapping[str, Any], policy: Policy, seal: EscalationSeal | None = None
) -> Outcome | None:
    """The outcome of an Airflow pod whose base container has ended; None for any other pod
    (not Airflow, no task identity, still running, unreadable times). With `seal` (serve
    always has one), an escalated memory counts only when its seal verifies: a pod created with
    forged escalation annotations while podtier was down cannot pass them to the next pod of
    its try."""
    meta = raw.get("metadata")
    if not isinstance(meta, dict):
        return None
    labels = _strings(meta.get("labels"))
    if not is_airflow(labels, policy.airflow_pods):
        return None
    terminated = base_terminated(raw)
    if terminated is None:
        return None
    finished = parse_time(terminated.get("finishedAt"))
    if finished is None:
        return None
    annotations = _strings(meta.get("annotations"))
    namespace = str(meta.get("namespace") or "")
    instance = task_instance(namespace, labels, annotations)
    if instance is None:
        return None
    spec = raw.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    requests, limits = _base_resources(spec)
    exit_code = terminated.get("exitCode")
    reason = terminated.get("reason")
    if seal is None:
        escalated = escalated_memory(annotations)
    else:
        escalated = seal.verified_memory_of(namespace, labels, annotations)
    pool = annotations.get(POOL_ANNOTATION) or pool_by_selector(spec.get("nodeSelector"), policy)
    return Outcome(
        instance=instance,
        pod=f"{namespace}/{meta.get('name') or ''}",
        uid=str(meta.get("uid") or ""),
        exit_code=exit_code if type(exit_code) is int else None,
        reason=reason[:64] if isinstance(reason, str) else "",
        oom_killed=reason == "OOMKilled",
        started_at=parse_time(terminated.get("startedAt")),
        finished_at=finished,
        requests=requests,
        limits=limits,
        tier=annotations.get(TIER_ANNOTATION, "")[:63],
        pool=pool[:63],
        escalated_bytes=escalated // MEMORY_UNIT if escalated is not None else None,
        labels=labels,
        annotations=annotations,
    )


def _base_resources(spec: Mapping[str, Any]) -> tuple[Resources, Resources]:
    for container in spec.get("containers") or ():
        if isinstance(container, dict) and container.get("name") == MAIN_CONTAINER:
            resources = container.get("resources")
            if not isinstance(resources, dict):
                return {}, {}
            try:
                return (
                    parse_resource_map(resources.get("requests"), "requests"),
                    parse_resource_map(resources.get("limits"), "limits"),
                )
            except ResourceError:
                return {}, {}
    return {}, {}


def _strings(value: object) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
