"""Per Airflow task: runs, OOM kills, requested against used and peak, and waste (pure).

A task's row comes from its TaskProfile when it has one (every run the learning has seen),
else from its pods in the window. Waste = Σ max(0, requested − used) × t.
"""

from __future__ import annotations

from dataclasses import dataclass

from podtier.webhook.core.prices import GIB, HOUR
from podtier.webhook.policy import Cost
from podtier.webhook.report.facts import PodRun, Profile, TaskKey, Usage


@dataclass(slots=True)
class TaskRow:
    namespace: str
    dag_id: str
    task_id: str
    source: str  # "profile" or "pods"
    tier: str
    pool: str
    runs: int
    oom_kills: int
    run_hours: float
    cpu_requested: int  # millicores, the latest run's
    cpu_used: int | None  # millicores: p95 (profile), or the largest sample (pods)
    memory_requested: int  # bytes
    memory_peak: int | None  # bytes
    wasted_cpu_hours: float = 0.0  # Σ max(0, requested − used) × t
    wasted_memory_gib_hours: float = 0.0
    wasted_cost: float | None = None
    recommended_tier: str | None = None


def profile_row(profile: Profile, cost: Cost | None) -> TaskRow:
    namespace, dag_id, task_id = profile.task
    hours = profile.run_seconds / HOUR
    row = TaskRow(
        namespace,
        dag_id,
        task_id,
        "profile",
        profile.tier,
        profile.pool,
        profile.runs,
        profile.oom_kills,
        hours,
        profile.cpu,
        profile.cpu_p95,
        profile.memory,
        profile.memory_peak,
        recommended_tier=profile.recommended_tier,
    )
    _waste(row, profile.cpu, profile.memory, Usage(profile.cpu_p95, profile.memory_peak), hours)
    row.wasted_cost = waste_cost(row, cost)
    return row


def _waste(row: TaskRow, cpu: int, memory: int, usage: Usage | None, hours: float) -> None:
    if usage is None:
        return
    if usage.cpu is not None:
        row.wasted_cpu_hours += max(0, cpu - usage.cpu) / 1000 * hours
    if usage.memory is not None:
        row.wasted_memory_gib_hours += max(0, memory - usage.memory) / GIB * hours


def waste_cost(row: TaskRow, cost: Cost | None) -> float | None:
    if cost is None:
        return None
    return row.wasted_cpu_hours * cost.cpu_hour + row.wasted_memory_gib_hours * cost.memory_gib_hour


def add_task_pod(
    rows: dict[TaskKey, TaskRow], pod: PodRun, usage: Usage | None, hours: float
) -> None:
    row = rows.get(pod.task)
    if row is None:
        namespace, dag_id, task_id = pod.task
        row = rows[pod.task] = TaskRow(
            namespace,
            dag_id,
            task_id,
            "pods",
            pod.tier,
            pod.pool,
            0,
            0,
            0.0,
            pod.cpu,
            None,
            pod.memory,
            None,
        )
    row.runs += 1
    row.oom_kills += pod.oom_killed
    row.run_hours += hours
    row.cpu_requested = max(row.cpu_requested, pod.cpu)
    row.memory_requested = max(row.memory_requested, pod.memory)
    if usage is not None:
        if usage.cpu is not None:
            row.cpu_used = max(row.cpu_used or 0, usage.cpu)
        if usage.memory is not None:
            row.memory_peak = max(row.memory_peak or 0, usage.memory)
    _waste(row, pod.cpu, pod.memory, usage, hours)
