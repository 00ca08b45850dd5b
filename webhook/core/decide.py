"""The decision: tier, sizing and pool for one Airflow pod. Pure: no clock, no I/O.

choose_tier ─► advise (the task's profile: right-sizing, OOM escalation; `core.learned`)
   ─► size_container (the tier's sizes, or the learned target inside its limits)
   ─► place (per node, from the CapacityView)
                          ├─ first pool full, tier with maxWaitSeconds: wait for it, pinned,
                          │  when room comes in time (`core.waiting`)
                          └─ nothing fits: downgrade (heavy → medium) and retry, unless the
                             tier was learned (a step down would undo it)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from podtier.webhook.core.capacity import CapacityView
from podtier.webhook.core.escalation_seal import EscalationSeal, sealed, verified_memory
from podtier.webhook.core.learned import NO_ADVICE, Advice, Escalation, advise, with_memory_limit
from podtier.webhook.core.matching import first_rule
from podtier.webhook.core.placement import Placement, place, prefer_node_selector
from podtier.webhook.core.pod import ContainerView, PodView, pod_requests
from podtier.webhook.core.policy import PlacementMode, Policy, Pool, Rule, Tier
from podtier.webhook.core.profile import ProfilesView, pod_instance
from podtier.webhook.core.quantity import QuantityError, to_milli
from podtier.webhook.core.resources import Resources, covers
from podtier.webhook.core.sizing import Sizing, Target, size_container
from podtier.webhook.core.tiering import (
    CONDITIONAL_ANNOTATIONS,
    ESCALATED_MEMORY_ANNOTATION,
    NODE_ANNOTATION,
    POLICY_ANNOTATION,
    POOL_ANNOTATION,
    REASON_ANNOTATION,
    RIGHT_SIZED_ANNOTATION,
    TIER_ANNOTATION,
    TierChoice,
    choose_tier,
    downgrade_allowed,
    override_mode,
)
from podtier.webhook.core.waiting import wait_or_spill


@dataclass(frozen=True)
class Decision:
    tier: Tier
    pool: Pool  # pinned to; in prefer mode, the pool podtier predicts the scheduler picks
    pools: tuple[Pool, ...]  # the pools the tier (or rule) allows, in placement order
    mode: PlacementMode
    sizing: Sizing | None  # None when the pod has no main container to size
    node: str | None  # the node that fits; reserve it unless dryRun
    requests: Resources  # the pod's effective requests after the change
    reason: str
    warnings: tuple[str, ...]
    annotations: Mapping[str, str]
    escalation: Escalation | None = None  # the memory raise after an OOM kill, if any
    # The task's per-resource recommendation (milli-units), and whether the pod was sized by it.
    recommended: Target | None = None
    right_sized: bool = False
    # In prefer mode: the pod's nodeSelector pairs on pool keys, taken out (`prefer_node_selector`)
    removed_selector: Mapping[str, str] = field(default_factory=dict)
    # A pod that waits for its first pool: the node to hold its room on meanwhile (`node` is
    # None: no node has room now). The edge reserves it, so the next pod sees it waiting.
    hold_on: str | None = None


def decide(
    pod: PodView,
    policy: Policy,
    capacity: CapacityView,
    profiles: ProfilesView | None = None,
    seal: EscalationSeal | None = None,
) -> Decision:
    """`profiles`: what podtier learned of each task (None: learning off); `seal`: signs the
    escalations made here and checks those the pod carries (None: none is believed)."""
    earlier = _earlier_decision(pod, policy, seal)
    if earlier is not None:
        return earlier

    choice = choose_tier(pod, policy)
    warnings = list(choice.warnings)
    main = pod.main
    if main is None:
        warnings.append(
            "podtier: the pod has no container named base; its resources were left alone"
        )
    advice = advise(pod, policy, choice, profiles) if main is not None else NO_ADVICE
    first = advice.tier or choice.tier
    tier, sizing, placement, requests = _try_tier(pod, policy, choice, first, capacity, advice)
    why_tier = advice.why or choice.why
    mode, hold_on, waiting, not_waiting = tier.placement_mode, None, False, ""
    instance = pod_instance(pod)  # its own run time tells where a pod that must wait waits
    waited = wait_or_spill(
        tier,
        allowed_pools(policy, choice.rule, tier),
        placement,
        requests,
        _kept_selector(pod, policy, tier),
        pod.tolerations,
        capacity,
        profiles,
        instance.key if instance is not None else None,
    )
    if waited is not None:
        warnings += waited.warnings
        not_waiting = waited.note
        if waited.first is not None:  # it waits for its first pool, pinned there
            placement, hold_on = waited.first.placement, waited.first.hold_on
            mode, waiting = "pin", True

    if not placement.fits and capacity.status.known and not waiting:
        lower = tier.downgrade_to
        explicit = sizing is not None and not sizing.tier_filled
        if lower is not None and not explicit and advice.tier is None and downgrade_allowed(pod):
            low = _try_tier(pod, policy, choice, policy.tiers[lower], capacity, advice)
            low_placement = low[2]
            if low_placement.fits:
                warnings.append(
                    f"podtier: stepped down from tier {tier.name} to {lower}: {placement.why}"
                )
                why_tier = f"stepped down from {tier.name}"
                tier, sizing, placement, requests = low
        if not placement.fits and waited is not None and waited.sooner is not None:
            placement, hold_on = waited.sooner.placement, waited.sooner.hold_on
            mode = "pin"  # no pool has room now: it waits where room comes first
        elif not placement.fits:
            warnings.append(
                f"podtier: {placement.why}; the pod will wait for capacity in pool "
                f"{placement.pool.name}"
            )

    pools = allowed_pools(policy, choice.rule, tier)
    how = placement_how(mode, pools)
    reason = f"tier {tier.name} ({why_tier}); pool {placement.pool.name} ({how}): {placement.why}"
    if not_waiting:
        reason += f"; {not_waiting}"
    if advice.note:
        reason += f"; {advice.note}"
    return Decision(
        tier=tier,
        pool=placement.pool,
        pools=pools,
        mode=mode,
        sizing=sizing,
        node=placement.node,
        requests=requests,
        reason=reason,
        warnings=tuple(warnings),
        annotations=sealed(
            {
                TIER_ANNOTATION: tier.name,
                POOL_ANNOTATION: placement.pool.name,
                REASON_ANNOTATION: reason,
                POLICY_ANNOTATION: policy.ident,
                **({NODE_ANNOTATION: placement.node} if placement.node is not None else {}),
                **advice.annotations,
            },
            pod,
            seal,
        ),
        escalation=advice.escalation,
        recommended=advice.recommendation.target if advice.recommendation is not None else None,
        right_sized=advice.target is not None,
        removed_selector=removed_selector(pod, policy, mode),
        hold_on=hold_on,
    )


def _kept_selector(pod: PodView, policy: Policy, tier: Tier) -> Mapping[str, str]:
    """The pod's nodeSelector as the scheduler will see it, before the pool's keys."""
    if tier.placement_mode != "prefer":
        return pod.node_selector
    return prefer_node_selector(pod.node_selector, tuple(policy.pools.values()))[0]


def removed_selector(pod: PodView, policy: Policy, mode: PlacementMode) -> dict[str, str]:
    """What prefer mode takes out of the pod's nodeSelector (nothing in pin mode)."""
    if mode != "prefer":
        return {}
    return prefer_node_selector(pod.node_selector, tuple(policy.pools.values()))[1]


def allowed_pools(policy: Policy, rule: Rule | None, tier: Tier) -> tuple[Pool, ...]:
    """The pools a pod of `tier` may go to, in placement order (a rule's `pools` win)."""
    names = rule.pools if rule is not None and rule.pools else tier.placement
    return tuple(policy.pools[name] for name in names)


def placement_how(mode: PlacementMode, pools: tuple[Pool, ...]) -> str:
    """How the pool is applied, for the reason annotation and `explain`."""
    if mode == "prefer":
        names = ", ".join(pool.name for pool in pools)
        return f"preferred, scheduler picks among {names}"
    return "pinned"


def _try_tier(
    pod: PodView,
    policy: Policy,
    choice: TierChoice,
    tier: Tier,
    capacity: CapacityView,
    advice: Advice,
) -> tuple[Tier, Sizing | None, Placement, Resources]:
    """The tier's sizing and placement, and the pod's effective requests once sized."""
    rule = choice.rule
    mode = override_mode(rule, tier)
    main = pod.main
    sizing = None
    if main is not None:
        sizing = size_container(main, tier, mode, choice.above_every_tier, advice.target)
        if advice.memory_limit is not None:
            sizing = with_memory_limit(sizing, advice.memory_limit)
    requests = pod_requests(pod, sizing.requests if sizing is not None else None)
    placement = place(
        allowed_pools(policy, rule, tier),
        requests,
        _kept_selector(pod, policy, tier),
        pod.tolerations,
        capacity,
    )
    return tier, sizing, placement, requests


def _earlier_decision(
    pod: PodView, policy: Policy, seal: EscalationSeal | None = None
) -> Decision | None:
    """A pod podtier already decided (the API server reinvokes webhooks after later mutations)
    keeps its tier and pool, is not reserved again, and gets the same annotations: mutating
    podtier's own output yields an empty patch. An escalation whose seal does not verify (forged,
    or copied from another pod) is no earlier decision: the pod is decided afresh."""
    notes = pod.annotations
    tier = policy.tiers.get(notes.get(TIER_ANNOTATION, ""))
    pool = policy.pools.get(notes.get(POOL_ANNOTATION, ""))
    if tier is None or pool is None or POLICY_ANNOTATION not in notes:
        return None
    escalated = verified_memory(seal, pod)
    if ESCALATED_MEMORY_ANNOTATION in notes and escalated is None:
        return None
    main = pod.main
    rule = first_rule(policy, pod)
    mode = override_mode(rule, tier)
    # As on the first pass: requests above every tier keep their limits as they are.
    above = (
        main is not None
        and any(main.requests.values())
        and not any(covers(t.request_milli(), main.requests) for t in policy.tiers.values())
    )
    sizing = None
    if main is not None:
        sizing = size_container(main, tier, mode, above, _kept_target(main, notes))
    if sizing is not None and escalated is not None:
        sizing = with_memory_limit(sizing, escalated)
    # A pod of a prefer tier that waited for its first pool was pinned there: it carries the
    # pool's node labels in its nodeSelector, which prefer mode would have taken out.
    placement_mode = tier.placement_mode
    if placement_mode == "prefer" and pool.node_selector.items() <= pod.node_selector.items():
        placement_mode = "pin"
    return Decision(
        tier=tier,
        pool=pool,
        pools=allowed_pools(policy, rule, tier),
        mode=placement_mode,
        sizing=sizing,
        node=None,
        requests=pod_requests(pod, sizing.requests if sizing is not None else None),
        reason=notes.get(REASON_ANNOTATION, f"tier {tier.name}, pool {pool.name}"),
        warnings=(),
        annotations={
            TIER_ANNOTATION: tier.name,
            POOL_ANNOTATION: pool.name,
            REASON_ANNOTATION: notes.get(REASON_ANNOTATION, ""),
            POLICY_ANNOTATION: notes[POLICY_ANNOTATION],
            **{key: notes[key] for key in CONDITIONAL_ANNOTATIONS if key in notes},
        },
        removed_selector=removed_selector(pod, policy, placement_mode),
    )


def _kept_target(main: ContainerView, notes: Mapping[str, str]) -> Target | None:
    """A right-sized pod keeps the sizes it was given (its own, now) on a reinvocation."""
    if RIGHT_SIZED_ANNOTATION not in notes:
        return None
    given = ("cpu", "memory")
    return Target(
        requests={name: main.requests[name] for name in given if name in main.requests},
        limits={name: main.limits[name] for name in given if name in main.limits},
        unlimited=frozenset(name for name in given if name not in main.limits),
    )


def escalated_memory(annotations: Mapping[str, str]) -> int | None:
    """The memory limit (milli-units) podtier raised the pod to after an OOM kill, if any."""
    text = annotations.get(ESCALATED_MEMORY_ANNOTATION)
    if text is None:
        return None
    try:
        return to_milli(text)
    except QuantityError:
        return None
