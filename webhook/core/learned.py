"""What the decision takes from the task's profile: OOM escalation and right-sizing. Pure.

    pod ─► task instance ─► profile (ProfilesView, read once per request)
        ├─► recommend: the smallest tier whose cpu request covers the cpu p95 and whose
        │     memory limit covers the memory peak x (1 + margin)
        │     recommend: podtier.io/recommended-tier · apply: also the tier, for pods that
        │     asked for none and set no resources of their own
        └─► escalate: the instance's previous pod was OOMKilled ─► memory limit at least
              max(1.2 x its limit, its limit + 256Mi), capped by the ceiling; the next tier up
              when one covers it; once per try (a relaunch with the same try_number gets the
              same memory, never a second raise)

Profiles that cannot be trusted (not synced, stale) are not read: the pod is decided by the
rules alone and the reason says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from podtier.webhook.core.pod import ContainerView, PodView
from podtier.webhook.core.profile import (
    MEMORY_UNIT,
    ProfilesView,
    RunRecord,
    TaskInstance,
    TaskProfile,
    pod_instance,
)
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.resources import covers
from podtier.webhook.core.sizing import Sizing
from podtier.webhook.core.tiering import (
    ESCALATED_MEMORY_ANNOTATION,
    RECOMMENDED_TIER_ANNOTATION,
    TierChoice,
    override_mode,
)
from podtier.webhook.policy.model import Learning, Policy, Tier

ESCALATION_FACTOR = 1.2
ESCALATION_MIN_STEP = 256 * 2**20  # bytes
MIB = 2**20


@dataclass(frozen=True)
class Escalation:
    killed_at: int  # bytes: the memory limit the previous pod was OOMKilled at
    memory: int  # bytes: the memory limit the new pod gets at least
    tier: Tier  # the tier it runs in (the next tier up when one covers `memory`)
    why: str  # "previous try OOMKilled at limit 4Gi"


@dataclass(frozen=True)
class Recommendation:
    tier: Tier | None
    why: str  # "12 runs: cpu p95 300m, memory peak 700Mi" or why there is none


@dataclass(frozen=True)
class Advice:
    """What the profile changes in the decision; `NO_ADVICE` changes nothing."""

    tier: Tier | None = None  # use this tier rather than the chosen one
    why: str = ""  # why that tier, for the reason annotation
    memory_limit: int | None = None  # milli-units: the base container's memory limit at least
    escalation: Escalation | None = None
    note: str = ""  # said at the end of the reason (profiles unknown)
    annotations: Mapping[str, str] = field(default_factory=dict)


NO_ADVICE = Advice()


def advise(
    pod: PodView, policy: Policy, choice: TierChoice, profiles: ProfilesView | None
) -> Advice:
    if profiles is None:
        return NO_ADVICE
    instance = pod_instance(pod)
    if instance is None:
        return NO_ADVICE
    settings = policy.learning_for(choice.rule)
    if not settings.oom_escalation and settings.right_sizing == "off":
        return NO_ADVICE
    status = profiles.status
    if not status.known:
        return Advice(note=f"learned profiles not used: {status.reason}")
    profile = profiles.get(instance.key)
    if profile is None:
        return NO_ADVICE

    main = pod.main
    explicit = main is not None and has_own_resources(main)
    annotations: dict[str, str] = {}
    tier, why = None, ""
    if settings.right_sizing != "off":
        recommendation = recommend(profile, policy, settings)
        recommended = recommendation.tier
        if recommended is not None:
            annotations[RECOMMENDED_TIER_ANNOTATION] = recommended.name
            if (
                settings.right_sizing == "apply"
                and not choice.asked
                and not explicit
                and recommended is not choice.tier
            ):
                tier, why = recommended, f"learned from {recommendation.why}"

    escalation = None
    current = tier or choice.tier
    if (
        settings.oom_escalation
        and main is not None
        and (settings.escalate_explicit or not explicit)
        and override_mode(choice.rule, current) != "never"
    ):
        escalation = escalate(instance, profile, policy, current, main, explicit)
    memory_limit = None
    if escalation is not None:
        tier, why = escalation.tier, escalation.why
        memory_limit = escalation.memory * MEMORY_UNIT
        annotations[ESCALATED_MEMORY_ANNOTATION] = format_milli(memory_limit, "memory")
    return Advice(tier, why, memory_limit, escalation, "", annotations)


def has_own_resources(container: ContainerView) -> bool:
    """The container sets cpu or memory itself (executor_config, a pod template, a KPO)."""
    return any(
        values.get(name) for values in (container.requests, container.limits) for name in _CPU_MEM
    )


_CPU_MEM = ("cpu", "memory")


# ---------------------------------------------------------------------------- right-sizing


def recommend(profile: TaskProfile, policy: Policy, settings: Learning) -> Recommendation:
    """The smallest tier that covers the task: its cpu request the task's cpu p95 (cpu is
    shared, not killed: the request is what the task can count on), its memory limit the
    task's memory peak x (1 + margin) (memory is killed at the limit, as the escalation
    judges it too), and its requests any other resource the last run requested (a GPU task
    stays on GPU tiers; a tier asking for a resource the task never requested is skipped)."""
    if profile.runs < settings.min_runs:
        return Recommendation(None, f"{profile.runs} of {settings.min_runs} runs seen")
    cpu, peak = profile.cpu_p95_milli, profile.memory_peak_bytes
    if cpu is None or peak is None:
        return Recommendation(None, "no usage sampled")
    memory = -(-int(peak * (1 + settings.margin)) // MIB) * MIB * MEMORY_UNIT
    extras = {name: v for name, v in profile.requests.items() if v and name not in _CPU_MEM}
    why = (
        f"{profile.runs} runs: cpu p95 {format_milli(cpu, 'cpu')}, memory peak "
        f"{_mib(peak)} + {settings.margin:.0%}"
    )
    for tier in policy.tiers.values():
        if set(tier.requests) - set(extras) - set(_CPU_MEM):
            continue
        requests = tier.request_milli()
        limit = tier.limits.get("memory") or tier.requests.get("memory")
        if covers(requests, {"cpu": cpu, **extras}) and limit is not None and limit.milli >= memory:
            return Recommendation(tier, why)
    return Recommendation(None, f"{why} exceed every tier")


# ---------------------------------------------------------------------------- OOM escalation


def escalate(
    instance: TaskInstance,
    profile: TaskProfile,
    policy: Policy,
    tier: Tier,
    main: ContainerView,
    explicit: bool,
) -> Escalation | None:
    """The raise for a pod whose task instance's previous pod was OOMKilled, or None."""
    target = escalation_target(instance, profile.last_runs)
    if target is None:
        return None
    killed_at, memory, why = target
    ceiling = policy.ceilings.get("memory")
    if ceiling is not None and memory * MEMORY_UNIT > ceiling.milli:
        memory = ceiling.milli // MEMORY_UNIT
        why += f"; memory capped at the ceiling {ceiling.text}"
    own = main.limits.get("memory", 0) // MEMORY_UNIT
    if memory <= own:
        return None  # the pod already asks for at least that much
    if not explicit:
        tier = _tier_covering(policy, tier, memory, main.requests)
    return Escalation(killed_at, memory, tier, why)


def escalation_target(
    instance: TaskInstance, last_runs: tuple[RunRecord, ...]
) -> tuple[int, int, str] | None:
    """(the limit the previous pod was killed at, the memory the new pod needs, why) in
    bytes, or None when the instance's previous pod was not OOMKilled.

    The previous pod is the newest of the same task instance (run_id, map_index, pod kind)
    with a try_number up to this one's. A relaunch with the same try_number (the provider's
    `pod_launch_failure_retries`) is raised once per try: from the first pod of the try killed,
    and to the memory that try was already given if it was raised before."""
    runs = [
        r
        for r in last_runs
        if r.run_key == instance.run_key
        and r.map_index == instance.map_index
        and r.kind == instance.kind
        and r.try_number <= instance.try_number
    ]
    if not runs or not runs[-1].oom_killed:
        return None
    previous = runs[-1]
    if previous.try_number < instance.try_number:
        base = previous
    else:
        this_try = [r for r in runs if r.try_number == instance.try_number]
        raised = next((r for r in this_try if r.escalated_bytes is not None), None)
        if raised is not None and raised.escalated_bytes is not None:
            limit = _limit_of(previous)
            why = (
                f"previous pod OOMKilled at limit {_mib(limit or raised.escalated_bytes)}; "
                f"kept at {_mib(raised.escalated_bytes)}, raised once in try "
                f"{instance.try_number} already"
            )
            return limit or raised.escalated_bytes, raised.escalated_bytes, why
        base = next(r for r in this_try if r.oom_killed)
    limit = _limit_of(base)
    if limit is None:
        return None
    memory = max(int(limit * ESCALATION_FACTOR), limit + ESCALATION_MIN_STEP)
    memory = -(-memory // MIB) * MIB
    which = "try" if base.try_number < instance.try_number else "pod of this try"
    return limit, memory, f"previous {which} OOMKilled at limit {_mib(limit)}"


def _limit_of(run: RunRecord) -> int | None:
    """What the pod was killed at: its memory limit, or without one its peak."""
    return run.memory_limit_bytes or run.memory_peak_bytes or None


def _tier_covering(policy: Policy, tier: Tier, memory: int, requests: Mapping[str, int]) -> Tier:
    """The first tier from `tier` up whose memory limit covers `memory` bytes and that asks
    for no resource the pod does not; when none covers it, the largest of those (its memory
    is raised beyond the tier's limit)."""
    names = list(policy.tiers)
    asked = {name for name, value in requests.items() if value} | set(_CPU_MEM)
    asked |= set(tier.requests)
    largest = tier
    for candidate in [policy.tiers[n] for n in names[names.index(tier.name) :]]:
        if set(candidate.requests) - asked:
            continue
        largest = candidate
        limit = candidate.limits.get("memory")
        if limit is not None and limit.milli >= memory * MEMORY_UNIT:
            return candidate
    return largest


def with_memory_limit(sizing: Sizing, memory_limit: int) -> Sizing:
    """`sizing` with the memory limit raised to `memory_limit` milli-units (never lowered)."""
    if sizing.limits.get("memory", 0) >= memory_limit:
        return sizing
    return replace(
        sizing,
        set_limits={**sizing.set_limits, "memory": format_milli(memory_limit, "memory")},
        limits={**sizing.limits, "memory": memory_limit},
    )


def _mib(value: int) -> str:
    """Bytes as Kubernetes prints memory: 4Gi, 4916Mi (rounded up to MiB)."""
    return format_milli(-(-value // MIB) * MIB * MEMORY_UNIT, "memory")
