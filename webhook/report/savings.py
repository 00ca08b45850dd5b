"""The saving if every recommendation were applied: the window's pods priced again, each at
what its task's profile recommends under the policy (pure). With `sizing: resources` (the
default) that is the recommended cpu and memory requests, in the pod's pool when the tier it
would be sized in may go there; with `sizing: tier`, the recommended tier's requests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from podtier.webhook.core.prices import GIB, pool_cost, price_per_hour
from podtier.webhook.core.profile import TaskProfile
from podtier.webhook.core.rightsizing import Recommendation, recommend_for_task
from podtier.webhook.policy import Policy
from podtier.webhook.report.facts import PodRun, Profile


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
    """A pool's pods of the window priced at their requests now, and again at what their
    task's profile recommends (pods without a recommendation count the same in both)."""

    pods: int = 0  # pods whose requests or pool would change
    now: Amount = field(default_factory=Amount)
    recommended: Amount = field(default_factory=Amount)


def task_recommendation(profile: Profile, policy: Policy) -> Recommendation:
    """What the policy recommends for a profiled task (once per task, not per pod)."""
    namespace, dag_id, task_id = profile.task
    task = TaskProfile(
        namespace=namespace,
        name="",
        dag_id=dag_id,
        task_id=task_id,
        runs=profile.runs,
        memory_peak_bytes=profile.memory_peak,
        cpu_p95_milli=profile.cpu_p95,
        requests={"nvidia.com/gpu": profile.gpu * 1000} if profile.gpu else {},
    )
    return recommend_for_task(task, policy)


def recommended_requests(
    pod: PodRun, recommendation: Recommendation | None
) -> tuple[int, int, int, str] | None:
    """(cpu, memory, gpu, pool) of the pod as its task's recommendation would size it, in its
    own pool when the recommended tier may go there, else that tier's first pool; None without
    a recommendation, or when it would change nothing."""
    if recommendation is None or recommendation.tier is None:
        return None
    tier = recommendation.tier
    pool = pod.pool if pod.pool in tier.placement else tier.placement[0]
    target = recommendation.target
    if target is not None:
        cpu, memory = target.requests["cpu"], target.requests["memory"] // 1000
        gpu = pod.gpu
    else:
        if tier.name == pod.tier:
            return None
        requests = tier.request_milli()
        cpu, memory = requests.get("cpu", 0), requests.get("memory", 0) // 1000
        gpu = sum(v for k, v in requests.items() if k.endswith("/gpu")) // 1000
    if (cpu, memory, gpu, pool) == (pod.cpu, pod.memory, pod.gpu, pod.pool):
        return None
    return cpu, memory, gpu, pool


def add_saving(
    saving: Saving,
    pod: PodRun,
    hours: float,
    recommendation: Recommendation | None,
    policy: Policy,
) -> None:
    now = (pod.cpu, pod.memory, pod.gpu, pod.pool)
    recommended = recommended_requests(pod, recommendation)
    if recommended is not None:
        saving.pods += 1
    for amount, (cpu, memory, gpu, pool) in (
        (saving.now, now),
        (saving.recommended, recommended or now),
    ):
        amount.add(
            cpu, memory, gpu, hours, price_per_hour(cpu, memory, gpu, pool_cost(policy, pool))
        )


def sum_savings(savings: Iterable[Saving]) -> Saving:
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
