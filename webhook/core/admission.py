"""Answer one decoded AdmissionReview request. Pure: the policy, the capacity view and the
escalation seal's key are handed in; the HTTP edge does the transaction, the reservation,
metrics and logs.

    mutate:   request ─► PodView ─► (Airflow pod, CREATE?) ─► decide ─► patch ─► response
    validate: CREATE ─► the pod's tier, its sealed escalation ─► violations ─► allow/deny/warn
              UPDATE of a pod or pods/resize ─► resources unchanged: allow
                 └─ changed: the new pod, by the OLD pod's tier and escalation (core.resize)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from podtier.webhook.core import review
from podtier.webhook.core.capacity import CapacityView
from podtier.webhook.core.decide import Decision, decide
from podtier.webhook.core.escalation_seal import EscalationSeal, verified_memory
from podtier.webhook.core.matching import is_airflow, is_airflow_pod
from podtier.webhook.core.patch import build_patch
from podtier.webhook.core.pod import PodError, PodView, view_pod
from podtier.webhook.core.policy import Policy, Tier
from podtier.webhook.core.profile import ProfilesView
from podtier.webhook.core.resize import (
    RESIZE_SUBRESOURCE,
    removed_limits,
    resources_changed,
    rewritten_annotations,
)
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
    seal: EscalationSeal | None = None,
) -> Answer:
    """`namespace_labels`: the labels of the request's namespace, if the edge knows them;
    `profiles`: the learned task profiles (None: learning off); `seal`: what signs and checks
    OOM escalations (None: no escalation is believed)."""
    uid = request["uid"]
    pod, skip = _admissible_pod(request, policy, namespace_labels)
    if skip is not None:
        return Answer(
            review.response(uid, True, warnings=skip), "skipped" if not skip else "unreadable"
        )
    assert pod is not None
    decision = decide(pod, policy, capacity, profiles, seal)
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
    seal: EscalationSeal | None = None,
) -> Answer:
    uid = request["uid"]
    if _is_pod_update(request):
        return _validate_update(request, policy, namespace_labels, seal)
    pod, skip = _admissible_pod(request, policy, namespace_labels)
    if skip:
        return _unreadable(uid, skip[0])
    if pod is None:
        return Answer(review.response(uid, True), "skipped")
    violations = find_violations(pod, policy, _tier_of(pod, policy), verified_memory(seal, pod))
    return _judged(uid, policy, pod, violations)


def _validate_update(
    request: Mapping[str, Any],
    policy: Policy,
    namespace_labels: Mapping[str, str] | None,
    seal: EscalationSeal | None,
) -> Answer:
    """A resize, or an UPDATE of the pod: judged only when container resources change, by the
    limits the old pod carries (its tier and sealed escalation), so rewriting the tier or the
    escalation annotations in the same UPDATE unlocks nothing."""
    uid = request["uid"]
    old_raw, new_raw = request.get("oldObject"), request.get("object")
    rewritten = rewritten_annotations(old_raw, new_raw)
    if rewritten and _is_airflow(old_raw, new_raw, policy):
        return _rewrite_refused(request, policy, rewritten)
    if not resources_changed(old_raw, new_raw):
        return Answer(review.response(uid, True), "skipped")
    namespace, name = str(request.get("namespace") or ""), str(request.get("name") or "")
    try:
        new = view_pod(new_raw, namespace, name, namespace_labels)
    except PodError as err:
        return _unreadable(uid, f"podtier: cannot read the resized pod: {err}")
    try:
        old: PodView | None = view_pod(old_raw, namespace, name, namespace_labels)
    except PodError:
        old = None  # the stored pod is unreadable: judged as it now asks, without escalation
    if not is_airflow_pod(policy, new) and (old is None or not is_airflow_pod(policy, old)):
        return Answer(review.response(uid, True), "skipped")
    judged_by = old or new
    tier = _tier_of(judged_by, policy)
    escalated = verified_memory(seal, old) if old is not None else None
    violations = find_violations(new, policy, tier, escalated)
    if old is not None:
        violations += removed_limits(old, new, tier.limits, policy.ceilings)
    return _judged(uid, policy, new, violations)


def _is_airflow(old: object, new: object, policy: Policy) -> bool:
    """Either side of the UPDATE is an Airflow pod (judged by its labels alone)."""
    for raw in (old, new):
        metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
        labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
        if isinstance(labels, Mapping) and is_airflow(labels, policy.airflow_pods):
            return True
    return False


def _rewrite_refused(request: Mapping[str, Any], policy: Policy, rewritten: list[str]) -> Answer:
    uid = request["uid"]
    key = f"{request.get('namespace') or ''}/{request.get('name') or ''}"
    said = "; ".join(rewritten)
    if policy.mode == "audit":
        warning = (
            f"podtier (audit): pod {key}: podtier's annotations changed after admission: {said}"
        )
        return Answer(review.response(uid, True, warnings=[warning]), "audited")
    status: review.Status = {
        "code": 403,
        "reason": "Forbidden",
        "message": f"podtier: pod {key}: podtier's annotations are written at creation and may "
        f"not change: {said}",
    }
    return Answer(review.response(uid, False, status=status), "denied")


def _is_pod_update(request: Mapping[str, Any]) -> bool:
    kind = request.get("kind")
    return (
        request.get("operation") == "UPDATE"
        and isinstance(kind, Mapping)
        and (kind.get("group"), kind.get("kind")) == ("", "Pod")
        and request.get("subResource") in (None, "", RESIZE_SUBRESOURCE)
    )


def _tier_of(pod: PodView, policy: Policy) -> Tier:
    """The tier podtier wrote on the pod, else the one it would choose."""
    written = policy.tiers.get(pod.annotations.get(TIER_ANNOTATION, ""))
    return written or choose_tier(pod, policy).tier


def _unreadable(uid: str, message: str) -> Answer:
    status: review.Status = {"code": 400, "reason": "BadRequest", "message": message}
    return Answer(review.response(uid, False, status=status), "unreadable")


def _judged(uid: str, policy: Policy, pod: PodView, violations: list[Violation]) -> Answer:
    if not violations:
        return Answer(review.response(uid, True), "allowed", pod)
    messages = [v.message for v in violations]
    found = tuple(violations)
    if policy.mode == "audit":
        warnings = [f"podtier (audit): {m}" for m in messages]
        return Answer(review.response(uid, True, warnings=warnings), "audited", pod, None, found)
    status: review.Status = {
        "code": 403,
        "reason": "Forbidden",
        "message": f"podtier: pod {pod.key} is over its limits under policy {policy.ident}: "
        + "; ".join(messages),
    }
    return Answer(review.response(uid, False, status=status), "denied", pod, None, found)


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
