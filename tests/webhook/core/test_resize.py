"""The validating webhook on UPDATE and `pods/resize`: a resize is judged by the limits the pod
was admitted under (its tier, its sealed escalation, the ceilings); updates that leave container
resources alone pass untouched; the answer is always a clear allow or deny, never a crash."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podtier.webhook.core import admission
from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.core.pod import view_pod
from podtier.webhook.policy.load import load_policy_text
from tests.webhook.core.fakes import POLICY

SEAL = EscalationSeal(b"resize-test-key-held-by-podtier-only")
IDENTITY = {
    "kubernetes_executor": "True",
    "dag_id": "etl",
    "task_id": "load",
    "run_id": "manual__1",
    "try_number": "2",
}


def admitted(
    tier: str = "medium",
    requests: dict[str, str] | None = None,
    limits: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod as podtier admitted it at `tier` (medium: requests 1/2Gi, limits 2/4Gi)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "etl-load-1",
            "namespace": "airflow",
            "labels": dict(IDENTITY),
            "annotations": {
                "podtier.io/tier": tier,
                "podtier.io/pool": "worker",
                "podtier.io/policy": POLICY.ident,
                **(annotations or {}),
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "base",
                    "image": "apache/airflow:3.3.2",
                    "resources": {
                        "requests": requests or {"cpu": "1", "memory": "2Gi"},
                        "limits": limits or {"cpu": "2", "memory": "4Gi"},
                    },
                }
            ]
        },
    }


def resized(
    pod: dict[str, Any],
    container: str = "base",
    *,
    requests: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    drop_limits: tuple[str, ...] = (),
) -> dict[str, Any]:
    new = copy.deepcopy(pod)
    for c in new["spec"]["containers"]:
        if c["name"] == container:
            c["resources"]["requests"].update(requests or {})
            c["resources"]["limits"].update(limits or {})
            for name in drop_limits:
                c["resources"]["limits"].pop(name)
    return new


def update(
    old: dict[str, Any], new: dict[str, Any], sub_resource: str | None = "resize"
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "UPDATE",
        "namespace": "airflow",
        "name": old["metadata"]["name"],
        "object": new,
        "oldObject": old,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return request


def judge(request: dict[str, Any], policy=POLICY, seal=SEAL) -> admission.Answer:
    return admission.validate(request, policy, None, seal)


def message(answer: admission.Answer) -> str:
    return answer.review["response"]["status"]["message"]


@pytest.mark.parametrize("sub_resource", ["resize", None], ids=["pods-resize", "pod-update"])
def test_a_resize_above_the_tier_is_denied_naming_container_resource_value_and_limit(
    sub_resource: str | None,
) -> None:
    old = admitted()
    answer = judge(update(old, resized(old, limits={"memory": "64Gi", "cpu": "32"}), sub_resource))
    assert answer.outcome == "denied"
    assert answer.review["response"]["status"]["code"] == 403
    text = message(answer)
    assert "container base: memory limit 64Gi is above tier medium's limit 4Gi" in text
    assert "container base: cpu limit 32 is above tier medium's limit 2" in text
    assert "cpu limit 32 is above the policy ceiling 16" in text


@pytest.mark.parametrize("sub_resource", ["resize", None], ids=["pods-resize", "pod-update"])
def test_a_resize_within_the_tier_is_allowed(sub_resource: str | None) -> None:
    old = admitted()
    new = resized(old, requests={"memory": "3Gi"}, limits={"memory": "4Gi", "cpu": "1500m"})
    answer = judge(update(old, new, sub_resource))
    assert (answer.outcome, answer.review["response"]["allowed"]) == ("allowed", True)


def test_audit_mode_allows_the_oversized_resize_with_a_warning() -> None:
    audit = load_policy_text(
        [("audit.yaml", _default_text().replace("mode: enforce", "mode: audit"))]
    )
    old = admitted()
    answer = judge(update(old, resized(old, limits={"memory": "8Gi"})), policy=audit)
    assert answer.outcome == "audited"
    assert answer.review["response"]["allowed"] is True
    assert answer.review["response"]["warnings"] == [
        "podtier (audit): container base: memory limit 8Gi is above tier medium's limit 4Gi"
    ]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p["metadata"]["labels"].update(done="True"), id="label"),
        pytest.param(
            lambda p: p["metadata"]["annotations"].update({"airflow/x": "1"}), id="annotation"
        ),
        pytest.param(lambda p: p.setdefault("status", {}).update(phase="Running"), id="status"),
        pytest.param(
            lambda p: p["spec"]["containers"][0].update(image="apache/airflow:3.3.3"), id="image"
        ),
    ],
)
def test_updates_that_leave_resources_alone_are_allowed_without_reading_the_pod(change) -> None:
    # over its tier already (admitted in audit mode, say): an unrelated update is not judged
    old = admitted(limits={"cpu": "2", "memory": "8Gi"})
    new = copy.deepcopy(old)
    change(new)
    answer = judge(update(old, new, None))
    assert answer.outcome == "skipped"
    assert answer.review["response"] == {"uid": "u-1", "allowed": True}


def test_rewriting_the_tier_annotation_in_the_same_update_unlocks_nothing() -> None:
    old = admitted()
    new = resized(old, limits={"memory": "8Gi", "cpu": "4"})
    new["metadata"]["annotations"]["podtier.io/tier"] = "heavy"
    new["metadata"]["labels"]["tier"] = "heavy"
    answer = judge(update(old, new, None))
    assert answer.outcome == "denied"
    assert message(answer) == (
        "podtier: pod airflow/etl-load-1: podtier's annotations are written at creation and may "
        'not change: podtier.io/tier: "medium" -> "heavy"'
    )


def test_the_tier_label_alone_unlocks_nothing_either() -> None:
    old = admitted()
    new = resized(old, limits={"memory": "8Gi", "cpu": "4"})
    new["metadata"]["labels"]["tier"] = "heavy"
    assert "memory limit 8Gi is above tier medium's limit 4Gi" in message(judge(update(old, new)))


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param(lambda n: n.update({"podtier.io/tier": "heavy"}), id="tier"),
        pytest.param(lambda n: n.pop("podtier.io/tier"), id="tier-removed"),
        pytest.param(lambda n: n.update({"podtier.io/escalated-memory": "60Gi"}), id="escalation"),
    ],
)
def test_rewriting_podtier_annotations_ahead_of_a_resize_is_refused(rewrite) -> None:
    """The two-step attempt: first an UPDATE of the annotations alone, then the resize."""
    old = admitted()
    new = copy.deepcopy(old)
    rewrite(new["metadata"]["annotations"])
    answer = judge(update(old, new, None))
    assert answer.outcome == "denied"
    assert "podtier's annotations are written at creation and may not change" in message(answer)


def test_a_sealed_escalation_lets_a_resize_reach_the_escalated_memory_and_no_further() -> None:
    pod = admitted(tier="heavy", limits={"cpu": "4", "memory": "9831Mi"})
    pod["metadata"]["annotations"]["podtier.io/escalated-memory"] = "9831Mi"
    pod["metadata"]["annotations"]["podtier.io/escalation-seal"] = SEAL.sign(
        view_pod(pod, "airflow"), "heavy", "9831Mi"
    )
    within = resized(pod, requests={"memory": "9Gi"})
    assert judge(update(pod, within)).outcome == "allowed"
    above = resized(pod, limits={"memory": "12Gi"})
    assert "memory limit 12Gi is above tier heavy's limit 9831Mi" in message(
        judge(update(pod, above))
    )


def test_escalation_annotations_written_in_the_update_itself_are_not_believed() -> None:
    old = admitted()
    new = resized(old, limits={"memory": "60Gi"})
    notes = new["metadata"]["annotations"]
    notes["podtier.io/escalated-memory"] = "60Gi"
    notes["podtier.io/escalation-seal"] = SEAL.sign(view_pod(new, "airflow"), "medium", "60Gi")
    answer = judge(update(old, new, None))
    assert "podtier.io/escalation-seal: (none) -> " in message(answer)


@pytest.mark.parametrize(
    ("memory", "allowed"),
    [
        pytest.param("1e3", True, id="1e3-bytes"),
        pytest.param("0.5Gi", True, id="0.5Gi"),
        pytest.param("1024Ki", True, id="1024Ki"),
        pytest.param("4194304Ki", True, id="4Gi-as-Ki"),
        pytest.param("4194305Ki", False, id="one-Ki-over"),
        pytest.param("4.1Gi", False, id="4.1Gi"),
        pytest.param("5e9", False, id="5e9"),
    ],
)
def test_odd_quantities_are_judged_by_their_value(memory: str, allowed: bool) -> None:
    old = admitted(requests={"cpu": "1", "memory": "1e3"})
    answer = judge(update(old, resized(old, limits={"memory": memory})))
    assert answer.review["response"]["allowed"] is allowed, answer.violations


def test_a_removed_limit_is_denied() -> None:
    old = admitted()
    answer = judge(update(old, resized(old, drop_limits=("memory",)), None))
    assert answer.outcome == "denied"
    assert "container base: memory limit removed (was 4Gi; the limit is 4Gi)" in message(answer)


def test_an_unknown_container_is_held_to_the_ceilings() -> None:
    old = admitted()
    new = copy.deepcopy(old)
    new["spec"]["containers"].append(
        {"name": "sidecar", "image": "x", "resources": {"limits": {"memory": "100Gi"}}}
    )
    answer = judge(update(old, new))
    assert "container sidecar: memory limit 100Gi is above the policy ceiling 64Gi" in message(
        answer
    )


@pytest.mark.parametrize(
    ("break_it", "said"),
    [
        pytest.param(lambda p: p["spec"].pop("containers"), "spec.containers: missing", id="none"),
        pytest.param(
            lambda p: p["spec"]["containers"][0]["resources"]["limits"].update(memory="lots"),
            'spec.containers[0].resources.limits.memory: "lots" is not a quantity',
            id="bad-quantity",
        ),
        pytest.param(
            lambda p: p.update(spec="resize me"),
            "spec: expected an object, got a string",
            id="spec-not-an-object",
        ),
    ],
)
def test_an_unreadable_resize_gets_a_clear_refusal(break_it, said: str) -> None:
    old = admitted()
    new = copy.deepcopy(old)
    break_it(new)
    response = judge(update(old, new)).review["response"]
    assert response["allowed"] is False
    assert response["status"] == {
        "code": 400,
        "reason": "BadRequest",
        "message": f"podtier: cannot read the resized pod: {said}",
    }


def test_a_resize_racing_a_policy_reload_is_judged_by_one_policy() -> None:
    """The pod was admitted under a policy whose tier `medium` is gone after a reload: it is
    judged by the tier the new policy would choose, and the ceilings, never let through."""
    reloaded = load_policy_text([("reloaded.yaml", _default_text().replace("medium", "standard"))])
    old = admitted()
    answer = judge(update(old, resized(old, limits={"memory": "64Gi"})), policy=reloaded)
    assert answer.outcome == "denied"
    assert "above tier standard's limit 4Gi" in message(answer)


def test_a_non_airflow_pod_is_not_judged() -> None:
    old = admitted()
    old["metadata"]["labels"] = {"app": "web"}
    assert judge(update(old, resized(old, limits={"memory": "64Gi"}))).outcome == "skipped"


def test_removing_the_airflow_labels_in_the_resize_does_not_escape_judgement() -> None:
    old = admitted()
    new = resized(old, limits={"memory": "32Gi"})
    new["metadata"]["labels"] = {"app": "web"}
    assert judge(update(old, new, None)).outcome == "denied"


def _default_text() -> str:
    from podtier.policies import DEFAULT_POLICY

    return DEFAULT_POLICY.read_text()
