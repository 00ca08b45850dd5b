"""The saving if every recommended tier were applied: the window's pods priced again, each
at the tier its task's TaskProfile recommends (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from podtier.webhook.policy import Policy
from podtier.webhook.report.facts import PodRun, Profile
from podtier.webhook.report.prices import GIB, pool_cost, price_per_hour


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


def add_saving(
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
