"""Which tier a pod belongs to: asked for, picked by a rule, classified by requests, or default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from podtier.webhook.core.matching import first_rule
from podtier.webhook.core.pod import PodView
from podtier.webhook.core.policy import OverrideMode, Policy, Rule, Tier
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.core.resources import covers

TIER_ANNOTATION = "podtier.io/tier"
POOL_ANNOTATION = "podtier.io/pool"
REASON_ANNOTATION = "podtier.io/reason"
POLICY_ANNOTATION = "podtier.io/policy"
DOWNGRADE_KEY = "podtier.io/downgrade"
# What podtier learned, written only when it has something to say (see core.learned); a fresh
# decision drops them when they are present but no longer true.
RECOMMENDED_TIER_ANNOTATION = "podtier.io/recommended-tier"
# The per-resource recommendation (`sizing: resources`): cpu and memory requests, memory limit.
RECOMMENDED_CPU_ANNOTATION = "podtier.io/recommended-cpu"
RECOMMENDED_MEMORY_ANNOTATION = "podtier.io/recommended-memory"
RECOMMENDED_MEMORY_LIMIT_ANNOTATION = "podtier.io/recommended-memory-limit"
# What the base container was given when the recommendation was applied.
RIGHT_SIZED_ANNOTATION = "podtier.io/right-sized"
ESCALATED_MEMORY_ANNOTATION = "podtier.io/escalated-memory"
# podtier's HMAC over the escalation (core.escalation_seal): without it the raise is not believed.
ESCALATION_SEAL_ANNOTATION = "podtier.io/escalation-seal"
LEARNED_ANNOTATIONS = (
    RECOMMENDED_TIER_ANNOTATION,
    RECOMMENDED_CPU_ANNOTATION,
    RECOMMENDED_MEMORY_ANNOTATION,
    RECOMMENDED_MEMORY_LIMIT_ANNOTATION,
    RIGHT_SIZED_ANNOTATION,
    ESCALATED_MEMORY_ANNOTATION,
    ESCALATION_SEAL_ANNOTATION,
)
# The node whose room podtier counted for the pod, written only when one was found. The
# scheduler may bind the pod to another node of its pool; every replica holds the pod's room on
# this node while it waits (see headroom.state, "Replicas").
NODE_ANNOTATION = "podtier.io/node"
# Written only when true of this decision: a fresh decision removes them when present but not
# true (a leftover of a copied spec, or a forgery); a reinvocation keeps them.
CONDITIONAL_ANNOTATIONS = (*LEARNED_ANNOTATIONS, NODE_ANNOTATION)


@dataclass(frozen=True)
class TierChoice:
    tier: Tier
    why: str  # "asked by label tier", "rule data-heavy", "requests fit light", "policy default"
    rule: Rule | None
    # True when the pod's own requests exceed every tier: its limits are left alone.
    above_every_tier: bool
    warnings: tuple[str, ...]
    asked: bool = False  # the pod asked for this tier by label or annotation


def choose_tier(pod: PodView, policy: Policy) -> TierChoice:
    warnings: list[str] = []
    rule = first_rule(policy, pod)
    for key in policy.tier_keys:
        for where, values in (("label", pod.labels), ("annotation", pod.annotations)):
            asked = values.get(key)
            if asked is None:
                continue
            if asked in policy.tiers:
                return TierChoice(
                    policy.tiers[asked], f"asked by {where} {key}", rule, False, (), asked=True
                )
            warnings.append(
                f'podtier: {where} {key}="{asked}" names no tier of policy {policy.name} '
                f"(known: {', '.join(policy.tiers)}); the tier was chosen as if none were asked"
            )
    if rule is not None and rule.tier is not None:
        return TierChoice(
            policy.tiers[rule.tier], f"rule {rule.name}", rule, False, tuple(warnings)
        )

    main = pod.main
    if main is not None and any(main.requests.values()):
        for tier in policy.tiers.values():
            if covers(tier.request_milli(), main.requests):
                return TierChoice(tier, "base requests fit it", rule, False, tuple(warnings))
        tier = _largest_tier_without_extras(policy, main.requests)
        shown = ", ".join(f"{k} {format_milli(v, k)}" for k, v in main.requests.items())
        return TierChoice(
            tier, f"base requests ({shown}) exceed every tier", rule, True, tuple(warnings)
        )

    return TierChoice(
        policy.tiers[policy.default_tier], "policy default", rule, False, tuple(warnings)
    )


def override_mode(rule: Rule | None, tier: Tier) -> OverrideMode:
    if rule is not None and rule.override is not None:
        return rule.override
    return tier.override


def downgrade_allowed(pod: PodView) -> bool:
    return pod.label_or_annotation(DOWNGRADE_KEY) != "false"


def _largest_tier_without_extras(policy: Policy, requests: Mapping[str, int]) -> Tier:
    """The last (largest) tier that asks for no resource the pod does not request: a cpu pod
    above every tier is judged against `heavy`, not against `gpu`."""
    asked = {name for name, value in requests.items() if value} | {"cpu", "memory"}
    candidates = [t for t in policy.tiers.values() if set(t.requests) <= asked]
    return (candidates or list(policy.tiers.values()))[-1]
