"""The report's figures from pod runs, usage and task profiles: pure, no I/O, no clock.

    pods ─► per pod: t (run hours), requests·t, used·t, c·t ─► sums per tier, per pool, in all
    pods ─► waits for a node ─► p50/p95 per pool, pending pods over time per pool
    pods + profiles ─► per task: runs, OOM kills, requested vs peak, waste ─► top 20s
    pods + profiles ─► the window's cost now, and with every recommended tier applied

Definitions (docs/report.md says them for users):

- tᵢ, a pod's run time: from `status.startTime` to its finish, or to `now` while it runs,
  clipped to the window [since, now]. A pod that never started has t = 0 and costs nothing;
  a finished pod that says no finish time has t = 0 too (counted in `no_run_time`).
- cᵢ, its price per hour: requested cpu cores × cpuHour + GiB × memoryGiBHour + GPUs × gpuHour,
  its pool's `cost`; None in a pool without prices. C = Σ cᵢ·tᵢ.
- used: the pod's PodMetrics sample; else its own run in its task's profile (`lastRuns`, cpu
  p95 and memory peak); else its task's profile (decaying cpu p95 and memory peak); else none.
- U = used / requested per pod; per group, Σ usedᵢ·tᵢ / Σ requestedᵢ·tᵢ over the pods of the
  group that have a usage figure for that resource.
- a task's figures come from its profile when it has one (every run the learning has seen, so
  `since` does not apply), else from its pods in the window.
- the saving: each pod of the window priced again at the tier its task's profile recommends
  (its requests, in its pool if the tier may go there, else the tier's first pool).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from podtier.webhook.core.prices import GIB, HOUR, named_first, pool_cost, price_per_hour
from podtier.webhook.insight.facts import FINISHED_PHASES
from podtier.webhook.policy import Cost, Policy
from podtier.webhook.report.facts import PodRun, Profile, TaskKey, Usage
from podtier.webhook.report.savings import Saving, add_saving, sum_savings, task_recommendation
from podtier.webhook.report.tasks import TaskRow, add_task_pod, profile_row, waste_cost
from podtier.webhook.report.waits import (
    Pending,
    PendingSeries,
    pending_series,
    percentile,
    wait_interval,
)

TOP = 20


# ---------------------------------------------------------------------------- per pod


@dataclass(frozen=True, slots=True)
class PodFigures:
    hours: float  # tᵢ
    cpu_hours: float  # requested cores × tᵢ
    memory_gib_hours: float
    gpu_hours: float
    cost: float | None  # cᵢ·tᵢ; None in a pool without prices
    used_cpu_hours: float | None  # None without a cpu usage figure
    used_memory_gib_hours: float | None
    cpu_utilization: float | None  # U = used / requested
    memory_utilization: float | None


def run_seconds(pod: PodRun, now: float, since: float | None = None) -> float:
    """tᵢ in seconds (see the module docstring)."""
    if pod.started is None:
        return 0.0
    if pod.finished is not None:
        end = pod.finished
    elif pod.phase in FINISHED_PHASES:
        return 0.0
    else:
        end = now
    start = pod.started if since is None else max(pod.started, since)
    return max(0.0, min(end, now) - start)


def pod_figures(
    pod: PodRun, usage: Usage | None, cost: Cost | None, now: float, since: float | None = None
) -> PodFigures:
    hours = run_seconds(pod, now, since) / HOUR
    price = price_per_hour(pod.cpu, pod.memory, pod.gpu, cost)
    used_cpu = usage.cpu if usage is not None else None
    used_memory = usage.memory if usage is not None else None
    return PodFigures(
        hours=hours,
        cpu_hours=pod.cpu / 1000 * hours,
        memory_gib_hours=pod.memory / GIB * hours,
        gpu_hours=pod.gpu * hours,
        cost=None if price is None else price * hours,
        used_cpu_hours=None if used_cpu is None else used_cpu / 1000 * hours,
        used_memory_gib_hours=None if used_memory is None else used_memory / GIB * hours,
        cpu_utilization=_ratio(used_cpu, pod.cpu),
        memory_utilization=_ratio(used_memory, pod.memory),
    )


def usage_of(
    pod: PodRun, metrics: Mapping[str, Usage], profiles: Mapping[TaskKey, Profile]
) -> tuple[Usage | None, str]:
    """The pod's usage figure and where it came from: `metrics`, `run profile`, `task profile`
    or `none`."""
    sample = metrics.get(pod.key)
    if sample is not None:
        return sample, "metrics"
    profile = profiles.get(pod.task)
    if profile is None:
        return None, "none"
    if pod.run is not None:
        run = profile.last_runs.get(pod.run)
        if run is not None and (run.cpu is not None or run.memory is not None):
            return run, "run profile"
    if profile.cpu_p95 is not None or profile.memory_peak is not None:
        return Usage(profile.cpu_p95, profile.memory_peak), "task profile"
    return None, "none"


# ---------------------------------------------------------------------------- sums


@dataclass(slots=True)
class Totals:
    """Sums over a group of pods (a tier, a pool, all)."""

    pods: int = 0
    run_hours: float = 0.0
    cpu_hours: float = 0.0  # requested
    memory_gib_hours: float = 0.0
    gpu_hours: float = 0.0
    cost: float | None = None  # over the priced pods; None when none is priced
    unpriced_pods: int = 0  # pods that ran in a pool without prices
    sampled_cpu_hours: float = 0.0  # requested, over the pods with a cpu usage figure
    used_cpu_hours: float = 0.0
    sampled_memory_gib_hours: float = 0.0
    used_memory_gib_hours: float = 0.0
    cpu_utilization: float | None = None  # U, set by `close`
    memory_utilization: float | None = None

    def add(self, f: PodFigures) -> None:
        self.pods += 1
        self.run_hours += f.hours
        self.cpu_hours += f.cpu_hours
        self.memory_gib_hours += f.memory_gib_hours
        self.gpu_hours += f.gpu_hours
        if f.cost is not None:
            self.cost = (self.cost or 0.0) + f.cost
        elif f.hours > 0:
            self.unpriced_pods += 1
        if f.used_cpu_hours is not None:
            self.sampled_cpu_hours += f.cpu_hours
            self.used_cpu_hours += f.used_cpu_hours
        if f.used_memory_gib_hours is not None:
            self.sampled_memory_gib_hours += f.memory_gib_hours
            self.used_memory_gib_hours += f.used_memory_gib_hours

    def close(self) -> Totals:
        self.cpu_utilization = _ratio(self.used_cpu_hours, self.sampled_cpu_hours)
        self.memory_utilization = _ratio(self.used_memory_gib_hours, self.sampled_memory_gib_hours)
        return self


# ---------------------------------------------------------------------------- the report


@dataclass(slots=True)
class Figures:
    policy: str
    source: str
    now: float
    since: float | None
    currency: str
    priced: bool  # some pool of the policy has prices
    total: Totals
    by_pool: dict[str, Totals]
    by_tier: dict[str, Totals]
    usage_sources: dict[str, int]  # pods by where their usage figure came from
    no_run_time: int  # finished pods that say no finish time
    pending: dict[str, Pending]
    pending_series: PendingSeries | None
    tasks: list[TaskRow]
    wasteful: list[TaskRow]
    killed: list[TaskRow]
    savings: dict[str, Saving]
    saving_total: Saving
    notes: list[str]


def figures(
    pods: Iterable[PodRun],
    metrics: Mapping[str, Usage],
    profiles: Mapping[TaskKey, Profile],
    policy: Policy,
    *,
    now: float,
    since: float | None = None,
    source: str = "",
    notes: Iterable[str] = (),
) -> Figures:
    total = Totals()
    by_pool: dict[str, Totals] = {}
    by_tier: dict[str, Totals] = {}
    usage_sources: dict[str, int] = {}
    no_run_time = 0
    waits: dict[str, list[float]] = {}
    waiting_now: dict[str, int] = {}
    intervals: dict[str, list[tuple[float, float | None]]] = {}
    task_pods: dict[TaskKey, TaskRow] = {}
    savings: dict[str, Saving] = {}
    recommendations = {task: task_recommendation(p, policy) for task, p in profiles.items()}
    for pod in pods:
        if not _in_window(pod, now, since):
            continue
        usage, where = usage_of(pod, metrics, profiles)
        usage_sources[where] = usage_sources.get(where, 0) + 1
        cost = pool_cost(policy, pod.pool)
        f = pod_figures(pod, usage, cost, now, since)
        if pod.phase in FINISHED_PHASES and pod.started is not None and pod.finished is None:
            no_run_time += 1
        total.add(f)
        by_pool.setdefault(pod.pool, Totals()).add(f)
        by_tier.setdefault(pod.tier, Totals()).add(f)
        span = wait_interval(pod)
        if span is not None:
            began, bound = span
            waits.setdefault(pod.pool, []).append(
                max(0.0, (now if bound is None else bound) - began)
            )
            intervals.setdefault(pod.pool, []).append(span)
            if bound is None:
                waiting_now[pod.pool] = waiting_now.get(pod.pool, 0) + 1
        if pod.task not in profiles:
            add_task_pod(task_pods, pod, usage, f.hours)
        recommendation = recommendations.get(pod.task)
        add_saving(savings.setdefault(pod.pool, Saving()), pod, f.hours, recommendation, policy)

    tasks = [profile_row(p, pool_cost(policy, p.pool)) for p in profiles.values()]
    for row in task_pods.values():
        row.wasted_cost = waste_cost(row, pool_cost(policy, row.pool))
        tasks.append(row)
    notes = list(notes)
    if no_run_time:
        notes.append(
            f"finished pods that say no finish time, counted with no run time: {no_run_time}"
        )
    unknown = sorted(
        {p.recommended_tier for p in profiles.values() if p.recommended_tier} - set(policy.tiers)
    )
    if unknown:
        notes.append(
            f"recommended tiers not in the policy, left out of the saving: {', '.join(unknown)}"
        )
    starts = [a for spans in intervals.values() for a, _ in spans]
    return Figures(
        policy=policy.ident,
        source=source,
        now=now,
        since=since,
        currency=policy.currency,
        priced=any(pool.cost is not None for pool in policy.pools.values()),
        total=total.close(),
        by_pool={k: by_pool[k].close() for k in sorted(by_pool, key=named_first)},
        by_tier={k: by_tier[k].close() for k in _tier_order(by_tier, policy)},
        usage_sources=usage_sources,
        no_run_time=no_run_time,
        pending={
            pool: Pending(
                len(values),
                waiting_now.get(pool, 0),
                percentile(values, 50),
                percentile(values, 95),
            )
            for pool, values in sorted(waits.items(), key=lambda kv: named_first(kv[0]))
        },
        pending_series=pending_series(
            intervals, since if since is not None else min(starts, default=now), now
        ),
        tasks=tasks,
        wasteful=sorted(
            (t for t in tasks if t.wasted_cpu_hours > 0),
            key=lambda t: (-t.wasted_cpu_hours, t.namespace, t.dag_id, t.task_id),
        )[:TOP],
        killed=sorted(
            (t for t in tasks if t.oom_kills > 0),
            key=lambda t: (-t.oom_kills, -t.runs, t.namespace, t.dag_id, t.task_id),
        )[:TOP],
        savings={k: savings[k] for k in sorted(savings, key=named_first)},
        saving_total=sum_savings(savings.values()),
        notes=notes,
    )


def _in_window(pod: PodRun, now: float, since: float | None) -> bool:
    if since is None:
        return True
    if pod.finished is not None:
        return pod.finished >= since
    if pod.phase in FINISHED_PHASES:
        last = pod.started if pod.started is not None else pod.created
        return last is None or last >= since
    return True


def _ratio(part: float | None, whole: float) -> float | None:
    if part is None or whole <= 0:
        return None
    return part / whole


def _tier_order(by_tier: Mapping[str, Totals], policy: Policy) -> list[str]:
    order = {name: i for i, name in enumerate(policy.tiers)}
    return sorted(by_tier, key=lambda t: (t == "", order.get(t, len(order)), t))
