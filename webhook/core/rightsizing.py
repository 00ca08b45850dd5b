"""Right-sizing: what a task should request, from what its earlier runs used. Pure.

    profile (decaying cpu p95, memory peak, runs) ─► usable? (enough runs; finite, not
    negative, inside the ceilings) ─► per resource (`sizing: resources`, the default):
        cpu request     = cpu p95 x (1 + cpuMargin)        rounded up to 10m
        memory request  = memory peak x (1 + margin)       rounded up to 16Mi
        memory limit    = memory peak x (1 + limitMargin)  rounded up to 16Mi, >= the request
                          (cut to the largest tier's limit when no tier holds it all)
        cpu limit       = the tier's (cpuLimit: tier) or none (cpuLimit: none)
      each at least the floor ─► the tiers that cover it: the smallest whose limits hold the
      cpu request and the memory limit, and that asks for no resource the task never requested
    ─► or per tier (`sizing: tier`): the smallest tier whose cpu request covers the cpu p95 and
      whose memory limit covers the memory peak x (1 + margin), with the tier's own sizes

The tier still decides the pool and what validation allows: a right-sized pod stays in its
tier when the tier's limits hold the recommendation, and moves to the smallest tier above that
does otherwise (`tier_for`). A figure that would size a pod outside the floor, the tiers or the
ceilings makes the whole profile ignored, and the recommendation says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from podtier.webhook.core.matching import first_rule
from podtier.webhook.core.pod import identity_view
from podtier.webhook.core.policy import Learning, Policy, Tier
from podtier.webhook.core.profile import MEMORY_UNIT, TaskProfile
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.resources import covers
from podtier.webhook.core.sizing import Target

MIB = 2**20
CPU_STEP = 10  # millicores
MEMORY_STEP = 16 * MIB  # bytes
CPU_MEM = ("cpu", "memory")


@dataclass(frozen=True)
class Recommendation:
    """What a task should get. `tier` is None when there is no recommendation (`why` says
    why); `target` is None with `sizing: tier` (the tier's own sizes are the recommendation)."""

    tier: Tier | None
    why: str  # "12 runs: cpu p95 300m, memory peak 700Mi" or why there is none
    target: Target | None = None
    # The tiers whose limits hold the target, smallest first (`sizing: resources`).
    tiers: tuple[Tier, ...] = ()
    ignored: bool = False  # the profile's figures could not be used (absurd, beyond limits)

    @property
    def requests(self) -> Mapping[str, int]:
        return self.target.requests if self.target is not None else {}

    @property
    def limits(self) -> Mapping[str, int]:
        return self.target.limits if self.target is not None else {}


@dataclass(frozen=True)
class _Figures:
    cpu: int  # millicores: the cpu p95
    peak: int  # bytes: the memory peak
    extras: Mapping[str, int] = field(default_factory=dict)  # other resources last requested


def recommend(profile: TaskProfile, policy: Policy, settings: Learning) -> Recommendation:
    if profile.runs < settings.min_runs:
        return Recommendation(None, f"{profile.runs} of {settings.min_runs} runs seen")
    cpu, peak = profile.cpu_p95_milli, profile.memory_peak_bytes
    if cpu is None or peak is None:
        return Recommendation(None, "no usage sampled")
    if not (_usable(cpu) and _usable(peak)):
        return _ignored(f"cpu p95 {cpu!r} and memory peak {peak!r} are not usable figures")
    extras = {name: v for name, v in profile.requests.items() if v and name not in CPU_MEM}
    figures = _Figures(int(cpu), int(peak), extras)
    if settings.sizing == "tier":
        return _recommend_tier(profile.runs, figures, policy, settings)
    return _recommend_resources(profile.runs, figures, policy, settings)


def recommend_for_task(profile: TaskProfile, policy: Policy) -> Recommendation:
    """The recommendation for a task outside any pod (`podtier profiles`, the report): with
    the learning settings of the first rule its namespace, dag_id and task_id match (a rule on
    pod labels cannot be told without a pod)."""
    notes = {"dag_id": profile.dag_id, "task_id": profile.task_id}
    task = identity_view(profile.namespace, profile.name, {}, notes)
    return recommend(profile, policy, policy.learning_for(first_rule(policy, task)))


def tier_for(recommendation: Recommendation, tier: Tier, policy: Policy) -> Tier | None:
    """The tier a pod of `tier` is sized in: `tier` itself when its limits hold the
    recommendation, else the smallest covering tier above it; None when none does."""
    if any(t.name == tier.name for t in recommendation.tiers):
        return tier
    order = list(policy.tiers)
    rank = order.index(tier.name) if tier.name in order else -1
    above = [t for t in recommendation.tiers if order.index(t.name) > rank]
    return above[0] if above else None


def _recommend_resources(
    runs: int, figures: _Figures, policy: Policy, settings: Learning
) -> Recommendation:
    floor = settings.floor
    cpu = max(_round_up(figures.cpu * (1 + settings.cpu_margin), CPU_STEP), floor.get("cpu", 0))
    memory = max(
        _round_up(figures.peak * (1 + settings.margin), MEMORY_STEP),
        floor.get("memory", 0) // MEMORY_UNIT,
    )
    memory_limit = max(_round_up(figures.peak * (1 + settings.limit_margin), MEMORY_STEP), memory)
    why = (
        f"{runs} runs: cpu p95 {format_milli(figures.cpu, 'cpu')}, memory peak {_mib(figures.peak)}"
    )
    for name, value in (("cpu", cpu), ("memory", memory * MEMORY_UNIT)):
        ceiling = policy.ceilings.get(name)
        if ceiling is not None and value > ceiling.milli:
            return _ignored(
                f"{why}: the {name} request it needs, {format_milli(value, name)}, is above "
                f"the ceiling {ceiling.text}"
            )
    ceiling = policy.ceilings.get("memory")
    if ceiling is not None:  # the limit margin is cut at the ceiling, the request is not
        memory_limit = min(memory_limit, ceiling.milli // MEMORY_UNIT)
    requests = {"cpu": cpu, "memory": memory * MEMORY_UNIT}
    limits = {"memory": memory_limit * MEMORY_UNIT}
    eligible = _eligible(policy, figures.extras)
    tiers = _holding(eligible, cpu, memory_limit * MEMORY_UNIT)
    if not tiers:
        # No tier's limit holds the full limit margin: the largest tier that holds the memory
        # request, its limit the tier's (the margin is cut, the request is not).
        tiers = _holding(eligible, cpu, memory * MEMORY_UNIT)[-1:]
    if not tiers:
        return _ignored(f"{why}: what it needs is above every tier's limits")
    unlimited = frozenset({"cpu"}) if settings.cpu_limit == "none" else frozenset()
    target = Target(requests, limits, unlimited)
    return Recommendation(tiers[0], why, target, tiers)


def _recommend_tier(
    runs: int, figures: _Figures, policy: Policy, settings: Learning
) -> Recommendation:
    """The smallest tier that covers the task: its cpu request the task's cpu p95 (cpu is
    shared, not killed: the request is what the task can count on), its memory limit the
    task's memory peak x (1 + margin) (memory is killed at the limit)."""
    memory = _round_up(figures.peak * (1 + settings.margin), MIB) * MEMORY_UNIT
    why = (
        f"{runs} runs: cpu p95 {format_milli(figures.cpu, 'cpu')}, memory peak "
        f"{_mib(figures.peak)} + {settings.margin:.0%}"
    )
    for tier in _eligible(policy, figures.extras):
        limit = tier.limits.get("memory") or tier.requests.get("memory")
        if (
            covers(tier.request_milli(), {"cpu": figures.cpu, **figures.extras})
            and limit is not None
            and limit.milli >= memory
        ):
            return Recommendation(tier, why)
    return Recommendation(None, f"{why} exceed every tier")


def _holding(tiers: list[Tier], cpu: int, memory: int) -> tuple[Tier, ...]:
    """The tiers whose limits (where they set one) hold `cpu` and `memory` milli-units."""
    return tuple(
        tier
        for tier in tiers
        if all(
            tier.limits[name].milli >= value
            for name, value in (("cpu", cpu), ("memory", memory))
            if name in tier.limits
        )
    )


def _eligible(policy: Policy, extras: Mapping[str, int]) -> list[Tier]:
    """The tiers, smallest first, that ask for no resource the task never requested (a GPU
    task stays on GPU tiers) and that hold its other resources."""
    return [
        tier
        for tier in policy.tiers.values()
        if not set(tier.requests) - set(extras) - set(CPU_MEM)
        and covers(tier.request_milli(), extras)
    ]


def _ignored(why: str) -> Recommendation:
    return Recommendation(None, f"profile ignored: {why}", ignored=True)


ABSURD = 2**53  # above it no figure is a measurement (9 PB of memory, 9e12 cores)


def _usable(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < ABSURD
    )


def _round_up(value: float, step: int) -> int:
    return -(-math.ceil(value) // step) * step


def _mib(value: int) -> str:
    """Bytes as Kubernetes prints memory: 4Gi, 4916Mi (rounded up to MiB)."""
    return format_milli(-(-value // MIB) * MIB * MEMORY_UNIT, "memory")
