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

import bisect
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from podtier.webhook.insight.facts import FINISHED_PHASES
from podtier.webhook.policy import Cost, Policy
from podtier.webhook.report.facts import PodRun, Profile, TaskKey, Usage

GIB = 1024**3
HOUR = 3600.0
TOP = 20
SERIES_POINTS = 240


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


def price_per_hour(cpu: int, memory: int, gpu: int, cost: Cost | None) -> float | None:
    """cᵢ for requests of `cpu` millicores, `memory` bytes and `gpu` GPUs."""
    if cost is None:
        return None
    return cpu / 1000 * cost.cpu_hour + memory / GIB * cost.memory_gib_hour + gpu * cost.gpu_hour


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


# ---------------------------------------------------------------------------- waits


@dataclass(frozen=True, slots=True)
class Pending:
    """A pool's waits for a node: pods bound in the window, and pods still waiting (counted
    with their wait so far)."""

    pods: int
    waiting_now: int
    p50_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True, slots=True)
class PendingSeries:
    """Pods waiting for a node at each of `times`, per pool (from their creation and binding
    times)."""

    times: list[float]
    by_pool: dict[str, list[int]]


def wait_interval(pod: PodRun) -> tuple[float, float | None] | None:
    """When the pod waited for a node: (created, bound), or (created, None) while it waits."""
    if pod.created is None:
        return None
    if pod.waiting:
        return pod.created, None
    if pod.bound is not None:
        return pod.created, max(pod.created, pod.bound)
    return None


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile, interpolated between ranks (numpy's default)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def pending_series(
    intervals: Mapping[str, list[tuple[float, float | None]]], start: float, end: float
) -> PendingSeries | None:
    """Pods waiting at `SERIES_POINTS` moments from `start` to `end`: those created at or
    before the moment and bound after it (or not yet). None when no pod waited at all."""
    if end <= start or not any(
        b is None or b > a for spans in intervals.values() for a, b in spans
    ):
        return None
    step = (end - start) / (SERIES_POINTS - 1)
    times = [start + i * step for i in range(SERIES_POINTS)]
    by_pool = {}
    for pool, spans in sorted(intervals.items(), key=lambda kv: _named_first(kv[0])):
        begins = sorted(a for a, _ in spans)
        ends = sorted(b for _, b in spans if b is not None)
        by_pool[pool] = [
            bisect.bisect_right(begins, t) - bisect.bisect_right(ends, t) for t in times
        ]
    return PendingSeries(times, by_pool)


# ---------------------------------------------------------------------------- tasks


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
    row.wasted_cost = _waste_cost(row, cost)
    return row


def _waste(row: TaskRow, cpu: int, memory: int, usage: Usage | None, hours: float) -> None:
    if usage is None:
        return
    if usage.cpu is not None:
        row.wasted_cpu_hours += max(0, cpu - usage.cpu) / 1000 * hours
    if usage.memory is not None:
        row.wasted_memory_gib_hours += max(0, memory - usage.memory) / GIB * hours


def _waste_cost(row: TaskRow, cost: Cost | None) -> float | None:
    if cost is None:
        return None
    return row.wasted_cpu_hours * cost.cpu_hour + row.wasted_memory_gib_hours * cost.memory_gib_hour


# ---------------------------------------------------------------------------- savings


@dataclass(slots=True)
class Amount:
    cpu_hours: float = 0.0
    memory_gib_hours: float = 0.0
    gpu_hours: float = 0.0
    cost: float | None = None

    def add(self, cpu: int, memory: int, gpu: int, hours: float, price: float | None) -> None:
        self.cpu_hours += cpu / 1000 * hours
        self.memory_gib_hours += memory / GIB * hours
        self.gpu_hours += gpu * hours
        if price is not None:
            self.cost = (self.cost or 0.0) + price * hours


@dataclass(slots=True)
class Saving:
    """A pool's pods of the window priced at their tiers now, and again with the tier their
    task's profile recommends (pods without a recommendation count the same in both)."""

    pods: int = 0  # pods whose tier would change
    now: Amount = field(default_factory=Amount)
    recommended: Amount = field(default_factory=Amount)


def recommended_requests(
    pod: PodRun, profile: Profile | None, policy: Policy
) -> tuple[int, int, int, str] | None:
    """(cpu, memory, gpu, pool) of the pod at its task's recommended tier, in its own pool
    when that tier may go there, else the tier's first pool; None without a recommendation
    that differs from the pod's tier (or names no tier of the policy)."""
    if profile is None or not profile.recommended_tier:
        return None
    target = policy.tiers.get(profile.recommended_tier)
    if target is None or target.name == pod.tier:
        return None
    requests = target.request_milli()
    return (
        requests.get("cpu", 0),
        requests.get("memory", 0) // 1000,
        sum(v for k, v in requests.items() if k.endswith("/gpu")) // 1000,
        pod.pool if pod.pool in target.placement else target.placement[0],
    )


def _add_saving(
    saving: Saving, pod: PodRun, hours: float, profile: Profile | None, policy: Policy
) -> None:
    now = (pod.cpu, pod.memory, pod.gpu, pod.pool)
    recommended = recommended_requests(pod, profile, policy)
    if recommended is not None:
        saving.pods += 1
    for amount, (cpu, memory, gpu, pool) in (
        (saving.now, now),
        (saving.recommended, recommended or now),
    ):
        amount.add(
            cpu, memory, gpu, hours, price_per_hour(cpu, memory, gpu, _pool_cost(policy, pool))
        )


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
    for pod in pods:
        if not _in_window(pod, now, since):
            continue
        usage, where = usage_of(pod, metrics, profiles)
        usage_sources[where] = usage_sources.get(where, 0) + 1
        cost = _pool_cost(policy, pod.pool)
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
        profile = profiles.get(pod.task)
        if profile is None:
            _add_task_pod(task_pods, pod, usage, f.hours)
        _add_saving(savings.setdefault(pod.pool, Saving()), pod, f.hours, profile, policy)

    tasks = [profile_row(p, _pool_cost(policy, p.pool)) for p in profiles.values()]
    for row in task_pods.values():
        row.wasted_cost = _waste_cost(row, _pool_cost(policy, row.pool))
        tasks.append(row)
    notes = list(notes)
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
        by_pool={k: by_pool[k].close() for k in sorted(by_pool, key=_named_first)},
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
            for pool, values in sorted(waits.items(), key=lambda kv: _named_first(kv[0]))
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
        savings={k: savings[k] for k in sorted(savings, key=_named_first)},
        saving_total=_sum_savings(savings.values()),
        notes=notes,
    )


def _add_task_pod(
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


def _sum_savings(savings: Iterable[Saving]) -> Saving:
    out = Saving()
    for saving in savings:
        out.pods += saving.pods
        for mine, theirs in ((out.now, saving.now), (out.recommended, saving.recommended)):
            mine.cpu_hours += theirs.cpu_hours
            mine.memory_gib_hours += theirs.memory_gib_hours
            mine.gpu_hours += theirs.gpu_hours
            if theirs.cost is not None:
                mine.cost = (mine.cost or 0.0) + theirs.cost
    return out


def _in_window(pod: PodRun, now: float, since: float | None) -> bool:
    if since is None:
        return True
    if pod.finished is not None:
        return pod.finished >= since
    if pod.phase in FINISHED_PHASES:
        last = pod.started if pod.started is not None else pod.created
        return last is None or last >= since
    return True


def _pool_cost(policy: Policy, pool: str) -> Cost | None:
    found = policy.pools.get(pool)
    return found.cost if found is not None else None


def _ratio(part: float | None, whole: float) -> float | None:
    if part is None or whole <= 0:
        return None
    return part / whole


def _named_first(name: str) -> tuple[bool, str]:
    return name == "", name


def _tier_order(by_tier: Mapping[str, Totals], policy: Policy) -> list[str]:
    order = {name: i for i, name in enumerate(policy.tiers)}
    return sorted(by_tier, key=lambda t: (t == "", order.get(t, len(order)), t))
