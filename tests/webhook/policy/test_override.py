"""Override modes end to end: a policy file, `admission.mutate`, the patch applied with
`jsonpatch`, and the base container's resources as the pod will run with them."""

from __future__ import annotations

import base64
import copy
from typing import Any

import jsonpatch
import orjson
import pytest

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core import admission
from podtier.webhook.policy import Policy
from podtier.webhook.policy.load import load_policy_text
from tests.conftest import review_of
from tests.webhook.core.fakes import UNKNOWN, airflow_pod

MEDIUM = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
OWN = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}


def policy_with(tier_override: str | None, rule_override: str | None) -> Policy:
    text = DEFAULT_POLICY.read_text()
    if tier_override:
        medium = '      limits: {cpu: "2", memory: 4Gi}\n      placement: [worker]\n'
        text = text.replace(medium, f"{medium}      override: {tier_override}\n")
        assert f"override: {tier_override}" in text
    if rule_override:
        rule = f"  rules: [{{name: r, match: {{dagId: sales_*}}, override: {rule_override}}}]\n"
        text = text.replace("  rules: []\n", rule)
    return load_policy_text([("policy.yaml", text)])


def mutated(policy: Policy, pod: dict[str, Any]) -> dict[str, Any]:
    response = admission.mutate(review_of(pod)["request"], policy, UNKNOWN).review["response"]
    assert response["allowed"] is True
    ops = orjson.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    return jsonpatch.apply_patch(copy.deepcopy(pod), ops)


MEDIUM_LABELS = {"kubernetes_executor": "True", "dag_id": "sales_etl", "tier": "medium"}


@pytest.mark.parametrize(
    ("tier_override", "rule_override", "resources", "expected"),
    [
        pytest.param(None, None, None, MEDIUM, id="missing-fills-an-empty-pod"),
        pytest.param(
            None,
            None,
            {"requests": {"cpu": "500m"}},
            {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
            id="missing-keeps-what-the-pod-has",
        ),
        pytest.param(
            None,
            None,
            {"limits": {"cpu": "500m"}},
            {
                "requests": {"cpu": "500m", "memory": "2Gi"},
                "limits": {"cpu": "500m", "memory": "4Gi"},
            },
            id="missing-never-requests-above-the-pods-own-limit",
        ),
        pytest.param(None, "always", OWN, MEDIUM, id="rule-always-replaces"),
        pytest.param("always", None, OWN, MEDIUM, id="tier-always-replaces"),
        pytest.param(None, "never", OWN, OWN, id="rule-never-keeps"),
        pytest.param(None, "never", None, None, id="rule-never-leaves-an-empty-pod-empty"),
        pytest.param("always", "never", OWN, OWN, id="rule-mode-beats-tier-mode"),
        pytest.param("never", "missing", {}, MEDIUM, id="rule-missing-beats-tier-never"),
    ],
)
def test_override_modes(tier_override, rule_override, resources, expected) -> None:
    policy = policy_with(tier_override, rule_override)
    pod = airflow_pod(resources=resources, labels=MEDIUM_LABELS)
    after = mutated(policy, pod)
    base = after["spec"]["containers"][0]
    assert (base.get("resources") or None) == expected
    # Placement and annotations are applied whatever the override mode.
    assert after["spec"]["nodeSelector"] == {"node-type": "worker"}
    assert after["metadata"]["annotations"]["podtier.io/tier"] == "medium"
    # The API server may call the webhook again on its own output: nothing more to change.
    again = admission.mutate(review_of(after)["request"], policy, UNKNOWN).review["response"]
    assert "patch" not in again
    # And the result passes validation.
    checked = admission.validate(review_of(after)["request"], policy)
    assert checked.review["response"]["allowed"] is True
