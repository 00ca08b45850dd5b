"""What the decision takes from the task's profile: right-sizing and OOM escalation. Pure.

    pod ─► task instance ─► profile (ProfilesView, read once per request)
        ├─► recommend (`core.rightsizing`): per resource (cpu from its p95, memory from its
        │     peak, each with a margin, inside the tier's limits, the floor and the ceilings),
        │     or per tier (`sizing: tier`)
        │     recommend: the podtier.io/recommended-* annotations · apply: also size the pod
        │     by it (pods that set no resources of their own, or any pod under
        │     `override: always`); the tier stays unless its limits cannot hold it, then the
        │     smallest tier above that can (its pool follows)
        └─► escalate: the instance's previous pod was OOMKilled ─► memory limit at least
              max(1.2 x its limit, its limit + 256Mi), capped by the ceiling; the next tier up
              when one covers it; once per try (a relaunch with the same try_number gets the
              same memory, never a second raise). Escalation wins over a recommendation.

Profiles that cannot be trusted (not synced, stale) are not read: the pod is decided by the
rules alone and the reason says so. A profile whose figures are absurd is ignored, and the
reason says so too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from podtier.webhook.core.pod import ContainerView, PodView
from podtier.webhook.core.policy import Learning, Policy, Tier
from podtier.webhook.core.profile import (
    MEMORY_UNIT,
    ProfilesView,
    RunRecord,
    TaskInstance,
    TaskProfile,
    pod_instance,
)
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.rightsizing import Recommendation, recommend, tier_for
from podtier.webhook.core.sizing import Sizing, Target
from podtier.webhook.core.tiering import (
    ESCALATED_MEMORY_ANNOTATION,
    RECOMMENDED_CPU_ANNOTATION,
    RECOMMENDED_MEMORY_ANNOTATION,
    RECOMMENDED_MEMORY_LIMIT_ANNOTATION,
    RECOMMENDED_TIER_ANNOTATION,
    RIGHT_SIZED_ANNOTATION,
    TierChoice,
    override_mode,
)

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
class Advice:
    """What the profile changes in the decision; `NO_ADVICE` changes nothing."""

    tier: Tier | None = None  # use this tier rather than the chosen one
    why: str = ""  # why that tier, for the reason annotation
    memory_limit: int | None = None  # milli-units: the base container's memory limit at least
    escalation: Escalation | None = None
    note: str = ""  # said at the end of the reason (profiles unknown, profile ignored)
    annotations: Mapping[str, str] = field(default_factory=dict)
    target: Target | None = None  # the sizes the base container gets (right-sizing applied)
    recommendation: Recommendation | None = None


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
    tier: Tier | None = None
    why, note = "", ""
    target: Target | None = None
    recommendation = None
    if settings.right_sizing != "off":
        recommendation = recommend(profile, policy, settings)
        if recommendation.ignored:
            note = recommendation.why
        sized_in = _sized_in(recommendation, choice, policy, settings)
        if sized_in is not None:
            annotations.update(recommendation_annotations(recommendation, sized_in))
        if settings.right_sizing == "apply" and sized_in is not None and main is not None:
            target = recommendation.target
            mode = override_mode(choice.rule, sized_in)
            if target is None:  # sizing: tier, as before: for pods that asked for nothing
                if not choice.asked and not explicit and sized_in is not choice.tier:
                    tier, why = sized_in, f"learned from {recommendation.why}"
            elif mode != "never" and (not explicit or mode == "always"):
                tier, why = sized_in, f"sized from {recommendation.why}"
                annotations[RIGHT_SIZED_ANNOTATION] = _sizes(target)
            else:
                target = None

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
        # The retry is sized by its tier and the raise: escalation wins over a recommendation.
        tier, why, target = escalation.tier, escalation.why, None
        annotations.pop(RIGHT_SIZED_ANNOTATION, None)
        memory_limit = escalation.memory * MEMORY_UNIT
        annotations[ESCALATED_MEMORY_ANNOTATION] = format_milli(memory_limit, "memory")
    return Advice(tier, why, memory_limit, escalation, note, annotations, target, recommendation)


def _sized_in(
    recommendation: Recommendation, choice: TierChoice, policy: Policy, settings: Learning
) -> Tier | None:
    """The tier a pod would be sized in by the recommendation: with `sizing: resources`, an
    asked tier when its limits hold it (else the smallest tier above that does), the
    smallest covering tier for any other pod; with `sizing: tier`, the recommended tier."""
    if recommendation.tier is None:
        return None
    if settings.sizing == "resources" and choice.asked:
        return tier_for(recommendation, choice.tier, policy)
    return recommendation.tier


def recommendation_annotations(recommendation: Recommendation, tier: Tier) -> dict[str, str]:
    """The podtier.io/recommended-* annotations: the tier, and with `sizing: resources` the
    cpu and memory requests and the memory limit."""
    out = {RECOMMENDED_TIER_ANNOTATION: tier.name}
    target = recommendation.target
    if target is not None:
        out[RECOMMENDED_CPU_ANNOTATION] = format_milli(target.requests["cpu"], "cpu")
        out[RECOMMENDED_MEMORY_ANNOTATION] = format_milli(target.requests["memory"], "memory")
        out[RECOMMENDED_MEMORY_LIMIT_ANNOTATION] = format_milli(target.limits["memory"], "memory")
    return out


def _sizes(target: Target) -> str:
    """What a right-sized pod was given, as `podtier.io/right-sized` says it."""
    parts = [f"requests cpu={format_milli(target.requests['cpu'], 'cpu')}"]
    parts.append(f"memory={format_milli(target.requests['memory'], 'memory')}")
    limit = f"limits memory={format_milli(target.limits['memory'], 'memory')}"
    if "cpu" in target.unlimited:
        limit += " cpu=none"
    return ", ".join(parts) + "; " + limit


def has_own_resources(container: ContainerView) -> bool:
    """The container sets cpu or memory itself (executor_config, a pod template, a KPO)."""
    return any(
        values.get(name) for values in (container.requests, container.limits) for name in _CPU_MEM
    )


_CPU_MEM = ("cpu", "memory")


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
