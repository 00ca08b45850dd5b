"""TaskProfile custom resources (`podtier.io/v1alpha1`) to and from the core model. Pure.

Anyone with write access can put anything into a custom resource, so reading is strict: a
field of the wrong type, a number out of range, missing ids, a name that is not the one its
ids give, too many runs: the whole object is refused (`ProfileError`, naming the field and the
value) and the caller ignores it with a log line. Fields this version does not know are
skipped, so an older replica reads a newer one's profiles. The format is in docs/learning.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from podtier.webhook.core.profile import Histogram, RunRecord, TaskProfile, task_key
from podtier.webhook.core.quantity import QuantityError, format_milli, to_milli
from podtier.webhook.insight.facts import parse_time
from podtier.webhook.learning import decay
from podtier.webhook.learning.names import profile_name

GROUP = "podtier.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TaskProfile"
PLURAL = "taskprofiles"
MANAGED_BY = {"app.kubernetes.io/managed-by": "podtier"}

LAST_RUNS = 10
MAX_ID = 250  # Airflow's limit on dag_id and task_id
MAX_BYTES = 2**50
MAX_MILLI_CPU = 10**8
MAX_COUNT = 10**9
MAX_SECONDS = 1e12
MAX_OBJECT_BYTES = 64 * 1024  # a written profile is a few kB
RESOURCE_KEYS = 16


class ProfileError(ValueError):
    """A TaskProfile that cannot be used; `str()` says the field path and the value."""


# ---------------------------------------------------------------------------- reading


def parse_profile(obj: Any) -> TaskProfile:
    if not isinstance(obj, dict):
        raise ProfileError(f"expected a {KIND} object, got {_kind(obj)}")
    meta = _map(obj.get("metadata"), "metadata")
    name = _text(meta.get("name"), "metadata.name", 253)
    namespace = _text(meta.get("namespace"), "metadata.namespace", 63)
    spec = _map(obj.get("spec"), "spec")
    dag_id = _text(spec.get("dagId"), "spec.dagId", MAX_ID)
    task_id = _text(spec.get("taskId"), "spec.taskId", MAX_ID)
    expected = profile_name(task_key(namespace, dag_id, task_id))
    if name != expected:
        raise ProfileError(
            f'metadata.name: "{name}" is not the name of its task (expected "{expected}")'
        )
    status = _map(obj.get("status") or {}, "status")
    runs = _count(status.get("runs", 0), "status.runs")
    oom_kills = _count(status.get("oomKills", 0), "status.oomKills")
    if oom_kills > runs:
        raise ProfileError(f"status.oomKills: {oom_kills} is more than status.runs {runs}")
    raw_runs = status.get("lastRuns") or []
    if not isinstance(raw_runs, list):
        raise ProfileError(f"status.lastRuns: expected a list, got {_kind(raw_runs)}")
    if len(raw_runs) > LAST_RUNS:
        raise ProfileError(f"status.lastRuns: {len(raw_runs)} entries, at most {LAST_RUNS}")
    recommended = status.get("recommendedTier")
    return TaskProfile(
        namespace=namespace,
        name=name,
        dag_id=dag_id,
        task_id=task_id,
        runs=runs,
        oom_kills=oom_kills,
        run_seconds=_number(status.get("runSeconds", 0), "status.runSeconds", MAX_SECONDS),
        memory_peak_bytes=_optional(status, "memoryPeakBytes", "status", MAX_BYTES),
        cpu_p95_milli=_optional(status, "cpuP95Milli", "status", MAX_MILLI_CPU),
        requests=_resources(status.get("requests"), "status.requests"),
        limits=_resources(status.get("limits"), "status.limits"),
        tier=_text(status.get("tier", ""), "status.tier", 63, empty=True),
        pool=_text(status.get("pool", ""), "status.pool", 63, empty=True),
        recommended_tier=None
        if recommended is None
        else _text(recommended, "status.recommendedTier", 63),
        last_runs=tuple(_run(r, f"status.lastRuns[{i}]") for i, r in enumerate(raw_runs)),
        updated_at=_text(status.get("updatedAt", ""), "status.updatedAt", 40, empty=True),
        memory_histogram=_histogram(status.get("memoryHistogram"), "status.memoryHistogram"),
        cpu_histogram=_histogram(status.get("cpuHistogram"), "status.cpuHistogram"),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def _run(raw: Any, path: str) -> RunRecord:
    run = _map(raw, path)
    finished = parse_time(run.get("finishedAt"))
    if finished is None:
        raise ProfileError(f"{path}.finishedAt: {_show(run.get('finishedAt'))} is not a time")
    kind = run.get("podKind", "executor")
    if kind not in ("executor", "kpo"):
        raise ProfileError(f"{path}.podKind: {_show(kind)} is not executor or kpo")
    oom = run.get("oomKilled", False)
    if not isinstance(oom, bool):
        raise ProfileError(f"{path}.oomKilled: {_show(oom)} is not true or false")
    exit_code = run.get("exitCode")
    if exit_code is not None and (not _is_int(exit_code) or abs(exit_code) > 2**31):
        raise ProfileError(f"{path}.exitCode: {_show(exit_code)} is not an exit code")
    seconds = run.get("runSeconds")
    return RunRecord(
        run_id=_text(run.get("runId", ""), f"{path}.runId", MAX_ID, empty=True),
        try_number=_bounded(run.get("tryNumber", 1), f"{path}.tryNumber", 0, 10**6),
        map_index=_bounded(run.get("mapIndex", -1), f"{path}.mapIndex", -1, 10**6),
        exit_code=exit_code,
        reason=_text(run.get("reason", ""), f"{path}.reason", 64, empty=True),
        oom_killed=oom,
        run_seconds=None if seconds is None else _number(seconds, f"{path}.runSeconds", 1e9),
        finished_at=finished,
        memory_limit_bytes=_optional(run, "memoryLimitBytes", path, MAX_BYTES),
        memory_peak_bytes=_optional(run, "memoryPeakBytes", path, MAX_BYTES),
        cpu_p95_milli=_optional(run, "cpuP95Milli", path, MAX_MILLI_CPU),
        pod_uid=_text(run.get("podUid", ""), f"{path}.podUid", 64, empty=True),
        kind=kind,
        escalated_bytes=_optional(run, "escalatedBytes", path, MAX_BYTES),
    )


def _histogram(raw: Any, path: str) -> Histogram:
    if raw is None:
        return Histogram()
    histogram = _map(raw, path)
    reference = _number(histogram.get("reference", 0), f"{path}.reference", 1e11)
    buckets = histogram.get("buckets") or []
    if not isinstance(buckets, list) or len(buckets) > decay.MAX_BUCKETS:
        raise ProfileError(f"{path}.buckets: expected at most {decay.MAX_BUCKETS} [index, weight]")
    out = []
    for i, pair in enumerate(buckets):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ProfileError(f"{path}.buckets[{i}]: {_show(pair)} is not [index, weight]")
        index = _bounded(pair[0], f"{path}.buckets[{i}][0]", 0, 1000)
        weight = _number(pair[1], f"{path}.buckets[{i}][1]", 1e15)
        out.append((index, weight))
    return Histogram(reference, tuple(sorted(out)))


# ---------------------------------------------------------------------------- writing


def profile_object(profile: TaskProfile) -> dict[str, Any]:
    """The TaskProfile object for `profile` (with its resourceVersion, when it has one)."""
    metadata: dict[str, Any] = {
        "name": profile.name,
        "namespace": profile.namespace,
        "labels": dict(MANAGED_BY),
    }
    if profile.resource_version:
        metadata["resourceVersion"] = profile.resource_version
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"dagId": profile.dag_id, "taskId": profile.task_id},
        "status": {
            "runs": profile.runs,
            "oomKills": profile.oom_kills,
            "runSeconds": round(profile.run_seconds, 3),
            "memoryPeakBytes": profile.memory_peak_bytes,
            "cpuP95Milli": profile.cpu_p95_milli,
            "requests": _quantities(profile.requests),
            "limits": _quantities(profile.limits),
            "tier": profile.tier,
            "pool": profile.pool,
            "recommendedTier": profile.recommended_tier,
            "lastRuns": [_run_object(r) for r in profile.last_runs],
            "updatedAt": profile.updated_at,
            "memoryHistogram": _histogram_object(profile.memory_histogram),
            "cpuHistogram": _histogram_object(profile.cpu_histogram),
        },
    }


def _run_object(run: RunRecord) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "tryNumber": run.try_number,
        "mapIndex": run.map_index,
        "exitCode": run.exit_code,
        "reason": run.reason,
        "oomKilled": run.oom_killed,
        "runSeconds": None if run.run_seconds is None else round(run.run_seconds, 3),
        "finishedAt": rfc3339(run.finished_at),
        "memoryLimitBytes": run.memory_limit_bytes,
        "memoryPeakBytes": run.memory_peak_bytes,
        "cpuP95Milli": run.cpu_p95_milli,
        "podUid": run.pod_uid,
        "podKind": run.kind,
        "escalatedBytes": run.escalated_bytes,
    }


def _histogram_object(histogram: Histogram) -> dict[str, Any]:
    return {"reference": histogram.reference, "buckets": [[i, w] for i, w in histogram.buckets]}


def _quantities(values: Mapping[str, int]) -> dict[str, str]:
    return {name: format_milli(milli, name) for name, milli in values.items()}


def rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- field checks


def _map(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{path}: expected an object, got {_kind(value)}")
    return value


def _text(value: Any, path: str, most: int, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise ProfileError(f"{path}: {_show(value)} is not a {'' if empty else 'non-empty '}string")
    if len(value) > most:
        raise ProfileError(f"{path}: {len(value)} characters, at most {most}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounded(value: Any, path: str, least: int, most: int) -> int:
    if not _is_int(value) or not least <= value <= most:
        raise ProfileError(f"{path}: {_show(value)} is not a whole number from {least} to {most}")
    return int(value)


def _count(value: Any, path: str) -> int:
    return _bounded(value, path, 0, MAX_COUNT)


def _optional(raw: Mapping[str, Any], key: str, path: str, most: int) -> int | None:
    value = raw.get(key)
    return None if value is None else _bounded(value, f"{path}.{key}", 0, most)


def _number(value: Any, path: str, most: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 <= value <= most:
        raise ProfileError(f"{path}: {_show(value)} is not a number from 0 to {most:g}")
    return float(value)


def _resources(value: Any, path: str) -> dict[str, int]:
    if value is None:
        return {}
    values = _map(value, path)
    if len(values) > RESOURCE_KEYS:
        raise ProfileError(f"{path}: {len(values)} resources, at most {RESOURCE_KEYS}")
    out = {}
    for name, quantity in values.items():
        _text(name, f"{path} key", 253)
        try:
            out[name] = to_milli(quantity)
        except QuantityError as err:
            raise ProfileError(f"{path}.{name}: {err}") from None
    return out


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _show(value: Any) -> str:
    text = f'"{value}"' if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
