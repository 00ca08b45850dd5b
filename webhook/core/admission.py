"""Answer one decoded AdmissionReview request. Pure: the policy and the capacity view are
handed in; the HTTP edge does the transaction, the reservation, metrics and logs.

    request ─► PodView ─► (Airflow pod, CREATE?) ─► decide ─► patch ─► response
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podtier.webhook.core import review
from podtier.webhook.core.capacity import CapacityView
from podtier.webhook.core.decide import Decision, decide, escalated_memory
from podtier.webhook.core.matching import is_airflow_pod
from podtier.webhook.core.patch import build_patch
from podtier.webhook.core.pod import PodError, PodView, view_pod
from podtier.webhook.core.policy import Policy
from podtier.webhook.core.profile import ProfilesView
from podtier.webhook.core.tiering import TIER_ANNOTATION, choose_tier
from podtier.webhook.core.validation import Violation, find_violations


@dataclass(frozen=True)
class Answer:
    review: review.AdmissionReview
    outcome: str  # skipped | patched | unchanged | unreadable | allowed | denied | audited
    pod: PodView | None = None
    decision: Decision | None = None
    violations: tuple[Violation, ...] = ()


def mutate(
    request: Mapping[str, Any],
    policy: Policy,
    capacity: CapacityView,
    namespace_labels: Mapping[str, str] | None = None,
    profiles: ProfilesView | None = None,
) -> Answer:
    """`namespace_labels`: the labels of the request's namespace, if the edge knows them;
    `profiles`: the learned task profiles (None: learning off)."""
    uid = request["uid"]
    pod, skip = _admissible_pod(request, policy, namespace_labels)
    if skip is not None:
        return Answer(
            review.response(uid, True, warnings=skip), "skipped" if not skip else "unreadable"
        )
    assert pod is not None
    decision = decide(pod, policy, capacity, profiles)
    patch = build_patch(pod, decision)
    answer = review.response(
        uid,
        True,
        patch=patch,
        warnings=decision.warnings,
        audit={"tier": decision.tier.name, "pool": decision.pool.name},
    )
    return Answer(answer, "patched" if patch else "unchanged", pod, decision)


def validate(
    request: Mapping[str, Any],
    policy: Policy,
    namespace_labels: Mapping[str, str] | None = None,
) -> Answer:
    uid = request["uid"]
    pod, skip = _admissible_pod(request, policy, namespace_labels)
    if skip:
        status: review.Status = {"code": 400, "reason": "BadRequest", "message": skip[0]}
        return Answer(review.response(uid, False, status=status), "unreadable")
    if pod is None:
        return Answer(review.response(uid, True), "skipped")
    tier = (
        policy.tiers.get(pod.annotations.get(TIER_ANNOTATION, "")) or choose_tier(pod, policy).tier
    )
    violations = tuple(find_violations(pod, policy, tier, escalated_memory(pod.annotations)))
    if not violations:
        return Answer(review.response(uid, True), "allowed", pod)
    messages = [v.message for v in violations]
    if policy.mode == "audit":
        warnings = [f"podtier (audit): {m}" for m in messages]
        return Answer(
            review.response(uid, True, warnings=warnings), "audited", pod, None, violations
        )
    status = {
        "code": 403,
        "reason": "Forbidden",
        "message": f"podtier: pod {pod.key} is over its limits under policy {policy.ident}: "
        + "; ".join(messages),
    }
    return Answer(review.response(uid, False, status=status), "denied", pod, None, violations)


def _admissible_pod(
    request: Mapping[str, Any], policy: Policy, namespace_labels: Mapping[str, str] | None = None
) -> tuple[PodView | None, list[str] | None]:
    """(pod, None) for an Airflow pod being created; (None, []) for anything podtier leaves
    alone; (None, [warning]) for a pod it cannot read."""
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or (kind.get("group"), kind.get("kind")) != ("", "Pod"):
        return None, []
    if request.get("operation") != "CREATE" or request.get("subResource"):
        return None, []
    try:
        pod = view_pod(
            request.get("object"),
            str(request.get("namespace") or ""),
            str(request.get("name") or ""),
            namespace_labels,
        )
    except PodError as err:
        return None, [f"podtier: cannot read the pod, so it was left alone: {err}"]
    if not is_airflow_pod(policy, pod):
        return None, []
    return pod, None
