"""What a report keeps of a raw Pod, PodMetrics and TaskProfile: pure, no I/O, no clock.

Each object is reduced to a small NamedTuple as it is read, so a 150,000-pod cluster costs a
few tens of MB, not its JSON. Units are fixed here once: cpu in millicores, memory in bytes,
GPUs as a count, times as Unix seconds.

- `pod_run`: an Airflow pod (None for any other pod) with its task, tier, pool, phase, the
  times it was created, bound to a node (the `PodScheduled` condition turning True, else its
  `status.startTime`), started (`status.startTime`: the kubelet took it, its requests hold
  the node from then) and finished (its containers' latest `finishedAt`), its effective
  requests as the scheduler counts them, and whether a container was OOMKilled.
- `metrics_usage`: a PodMetrics item's usage summed over containers.
- `task_profile`: a TaskProfile (podtier.io/v1alpha1), read by learning's own strict reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from podtier.webhook.core.quantity import QuantityError, to_milli
from podtier.webhook.core.resources import ResourceError
from podtier.webhook.core.tiering import POOL_ANNOTATION, TIER_ANNOTATION
from podtier.webhook.headroom.records import spec_requests
from podtier.webhook.insight.facts import (
    FINISHED_PHASES,
    PHASES,
    finished_at,
    is_airflow,
    parse_time,
    pool_by_selector,
    scheduled_at,
)
from podtier.webhook.learning.profiles import ProfileError, parse_profile
from podtier.webhook.policy import Policy

TaskKey = tuple[str, str, str]  # (namespace, dag_id, task_id)
RunKey = tuple[str, int, int]  # (run_id, try_number, map_index)
OOM_KILLED = "OOMKilled"


class FactError(ValueError):
    """An object the report cannot read; the message names the object and the field."""


class PodRun(NamedTuple):
    key: str  # namespace/name
    task: TaskKey
    run: RunKey | None  # None when the pod does not say its run id
    tier: str  # podtier.io/tier, "" when absent
    pool: str  # podtier.io/pool, else the policy pool its nodeSelector asks for, else ""
    phase: str  # one of insight.facts.PHASES
    waiting: bool  # not finished and not bound to a node
    created: float | None
    bound: float | None  # when its wait for a node ended
    started: float | None
    finished: float | None
    cpu: int  # requested millicores
    memory: int  # requested bytes
    gpu: int  # requested GPUs (any `*/gpu` resource)
    oom_killed: bool


class Usage(NamedTuple):
    cpu: int | None  # millicores
    memory: int | None  # bytes


class Profile(NamedTuple):
    task: TaskKey
    runs: int
    oom_kills: int
    run_seconds: float
    memory_peak: int | None
    cpu_p95: int | None
    cpu: int  # the last run's requests, as in PodRun
    memory: int
    gpu: int
    tier: str
    pool: str
    recommended_tier: str | None
    last_runs: Mapping[RunKey, Usage]
    updated: float | None


def pod_run(raw: Mapping[str, Any], policy: Policy) -> PodRun | None:
    """Raises FactError for an Airflow pod whose requests cannot be read."""
    meta = raw.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict) or not is_airflow(labels, policy.airflow_pods):
        return None
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    namespace = str(meta.get("namespace") or "")
    key = f"{namespace}/{meta.get('name') or ''}"
    try:
        requests = spec_requests(spec)
    except ResourceError as err:
        raise FactError(f"Pod {key}: {err}") from None
    said = status.get("phase")
    phase: str = said if said in PHASES else "Unknown" if said else "Pending"
    started = parse_time(status.get("startTime"))
    bound = bool(spec.get("nodeName"))
    finished = phase in FINISHED_PHASES
    return PodRun(
        key=key,
        task=(
            namespace,
            _identity(annotations, labels, "dag_id"),
            _identity(annotations, labels, "task_id"),
        ),
        run=_run(annotations, labels),
        tier=str(annotations.get(TIER_ANNOTATION) or ""),
        pool=str(annotations.get(POOL_ANNOTATION) or "")
        or pool_by_selector(spec.get("nodeSelector"), policy),
        phase=phase,
        waiting=not bound and not finished,
        created=parse_time(meta.get("creationTimestamp")),
        bound=(scheduled_at(status) or started) if bound else None,
        started=started,
        finished=finished_at(status) if finished else None,
        cpu=requests.get("cpu", 0),
        memory=requests.get("memory", 0) // 1000,
        gpu=sum(v for k, v in requests.items() if k.endswith("/gpu")) // 1000,
        oom_killed=_oom_killed(status),
    )


def metrics_usage(item: Mapping[str, Any]) -> tuple[str, Usage, float | None]:
    """(pod key, usage summed over containers, sample time) of a PodMetrics item."""
    meta = item.get("metadata") or {}
    key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    cpu = memory = 0
    try:
        for i, container in enumerate(item.get("containers") or ()):
            values = (container or {}).get("usage") or {}
            where = f"PodMetrics {key}: containers[{i}].usage"
            cpu += usage_milli(values.get("cpu", "0"), f"{where}.cpu")
            memory += usage_milli(values.get("memory", "0"), f"{where}.memory") // 1000
    except AttributeError:
        raise FactError(f"PodMetrics {key}: containers: expected a list of objects") from None
    return key, Usage(cpu, memory), parse_time(item.get("timestamp"))


def task_profile(raw: Mapping[str, Any]) -> Profile:
    """A TaskProfile read as learning reads it (`learning.profiles.parse_profile`: strict, the
    same refusals), in the report's units."""
    try:
        profile = parse_profile(raw)
    except ProfileError as err:
        meta = raw.get("metadata") if isinstance(raw, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        where = f"TaskProfile {meta.get('namespace') or ''}/{meta.get('name') or ''}"
        raise FactError(f"{where}: {err}") from None
    requests = profile.requests
    gpu = sum(value for name, value in requests.items() if name.endswith("/gpu"))
    return Profile(
        task=(profile.namespace, profile.dag_id, profile.task_id),
        runs=profile.runs,
        oom_kills=profile.oom_kills,
        run_seconds=profile.run_seconds,
        memory_peak=profile.memory_peak_bytes,
        cpu_p95=profile.cpu_p95_milli,
        cpu=requests.get("cpu", 0),
        memory=requests.get("memory", 0) // 1000,
        gpu=gpu // 1000,
        tier=profile.tier,
        pool=profile.pool,
        recommended_tier=profile.recommended_tier,
        last_runs={
            (run.run_id, run.try_number, run.map_index): Usage(
                run.cpu_p95_milli, run.memory_peak_bytes
            )
            for run in profile.last_runs
        },
        updated=parse_time(profile.updated_at),
    )


def _identity(annotations: Mapping[str, Any], labels: Mapping[str, Any], key: str) -> str:
    """Raw ids from the executor's annotations first, labels second (as TaskProfiles do)."""
    return str(annotations.get(key) or labels.get(key) or "")


def _run(annotations: Mapping[str, Any], labels: Mapping[str, Any]) -> RunKey | None:
    run_id = annotations.get("run_id")
    if not run_id:
        return None
    try:
        try_number = int(annotations.get("try_number") or labels.get("try_number") or 1)
        map_index = int(annotations.get("map_index") or labels.get("map_index") or -1)
    except (TypeError, ValueError):
        return None
    return str(run_id), try_number, map_index


def _oom_killed(status: Mapping[str, Any]) -> bool:
    for container in status.get("containerStatuses") or ():
        if not isinstance(container, dict):
            continue
        for state in (container.get("state"), container.get("lastState")):
            terminated = (state or {}).get("terminated") if isinstance(state, dict) else None
            if isinstance(terminated, dict) and terminated.get("reason") == OOM_KILLED:
                return True
    return False


# metrics-server writes usage as a whole number and a suffix ("48219531n", "151916Ki"), and
# nearly every value differs, so `to_milli`'s cache misses and its Decimal parse costs 5-7 us a
# value (about 1 s for 95,000 PodMetrics). These forms are read here exactly, rounded up as
# `to_milli` rounds; anything else goes to `to_milli`.
_PLAIN_USAGE = re.compile(r"(\d{1,18})(n|u|m|k|Ki|Mi|Gi)?")
_MAX_MILLI = (2**63 - 1) * 1000  # what to_milli allows: an int64 of base units
_USAGE_SCALE = {  # suffix: (multiply, divide) to milli-units
    None: (1000, 1),
    "n": (1, 1_000_000),
    "u": (1, 1000),
    "m": (1, 1),
    "k": (1_000_000, 1),
    "Ki": (1024 * 1000, 1),
    "Mi": (1024**2 * 1000, 1),
    "Gi": (1024**3 * 1000, 1),
}


def usage_milli(value: object, where: str) -> int:
    """`to_milli` for a usage quantity, fast for metrics-server's spellings."""
    if type(value) is str:
        plain = _PLAIN_USAGE.fullmatch(value)
        if plain is not None:
            multiply, divide = _USAGE_SCALE[plain.group(2)]
            milli = -(-int(plain.group(1)) * multiply // divide)
            if milli <= _MAX_MILLI:
                return milli
    return _milli(value, where)


def _milli(value: object, where: str) -> int:
    try:
        return to_milli(value)
    except QuantityError as err:
        raise FactError(f"{where}: {err}") from None


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FactError(f"{where}: {value!r} is not a whole number")
    return value


def _optional_int(value: object, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FactError(f"{where}: {value!r} is not a number")
    return float(value)
