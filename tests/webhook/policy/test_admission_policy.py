"""The ValidatingAdmissionPolicy's CEL, evaluated with cel-python the way kube-apiserver runs it:
matchConditions, then the variables in order, then each validation (its messageExpression when
it fails). Kubernetes' CEL libraries the policy uses (`quantity`, `compareTo`, `isQuantity`,
the strings extension's `replace` and `join`) are given as functions over
`kubernetes.utils.parse_quantity`. tests/test_admission_policy_controlplane.py runs the same
objects on a real 1.34 API server."""

from __future__ import annotations

import copy
import functools
from typing import Any

import celpy
import pytest
from celpy import celtypes
from celpy.adapter import json_to_cel
from kubernetes.utils import parse_quantity

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.policy.admission_policy import admission_policy, parameters, policy_spec
from podtier.webhook.policy.load import load_policy_text
from tests.webhook.core.fakes import POLICY


def _quantity(text: Any) -> Any:
    return celtypes.StringType(str(text))


def _compare_to(a: Any, b: Any) -> Any:
    x, y = parse_quantity(str(a)), parse_quantity(str(b))
    return celtypes.IntType((x > y) - (x < y))


def _is_quantity(text: Any) -> Any:
    try:
        parse_quantity(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


KUBERNETES_LIBRARY = {
    "quantity": _quantity,
    "compareTo": _compare_to,
    "isQuantity": _is_quantity,
    "replace": lambda s, a, b: celtypes.StringType(str(s).replace(str(a), str(b))),
    "join": lambda items, sep: celtypes.StringType(str(sep).join(str(i) for i in items)),
}


@functools.cache
def _program(expression: str) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression), functions=KUBERNETES_LIBRARY)


def admit(
    pod: dict[str, Any],
    old: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
) -> str | None:
    """None when the policy lets the request through (or does not apply); else the message."""
    spec = policy_spec()
    operation = "UPDATE" if old is not None else "CREATE"
    activation: dict[str, Any] = {
        "object": json_to_cel(pod),
        "oldObject": json_to_cel(old),
        "request": json_to_cel({"operation": operation}),
        "params": json_to_cel({"data": parameters(POLICY) if params is None else params}),
    }
    for condition in spec["matchConditions"]:
        if not bool(_program(condition["expression"]).evaluate(activation)):
            return None
    variables: dict[str, Any] = {}
    for variable in spec["variables"]:
        activation["variables"] = json_to_cel({}) if not variables else celtypes.MapType(variables)
        variables[celtypes.StringType(variable["name"])] = _program(
            variable["expression"]
        ).evaluate(activation)
    activation["variables"] = celtypes.MapType(variables)
    for validation in spec["validations"]:
        if not bool(_program(validation["expression"]).evaluate(activation)):
            if "messageExpression" in validation:
                return str(_program(validation["messageExpression"]).evaluate(activation))
            return str(validation["message"])
    return None


def pod(
    limits: dict[str, str],
    tier: str | None = "medium",
    requests: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    escalated: str | None = None,
) -> dict[str, Any]:
    notes = {"podtier.io/tier": tier} if tier else {}
    if escalated:
        notes["podtier.io/escalated-memory"] = escalated
    return {
        "metadata": {
            "name": "etl-load",
            "labels": {"kubernetes_executor": "True"} if labels is None else labels,
            "annotations": notes,
        },
        "spec": {
            "containers": [
                {
                    "name": "base",
                    "resources": {"requests": requests or {"cpu": "1"}, "limits": limits},
                }
            ]
        },
    }


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        pytest.param(pod({"cpu": "2", "memory": "4Gi"}), None, id="medium-at-its-limits"),
        pytest.param(
            pod({"memory": "4194305Ki"}),
            "container base: memory limit 4194305Ki is above tier medium's limit 4Gi",
            id="one-Ki-over",
        ),
        pytest.param(pod({"memory": "1e3"}), None, id="1e3-bytes"),
        pytest.param(pod({"memory": "0.5Gi"}), None, id="0.5Gi"),
        pytest.param(
            pod({"cpu": "32"}, tier=None),
            "container base: cpu limit 32 is above the policy ceiling 16",
            id="no-tier-ceilings-hold",
        ),
        pytest.param(pod({"memory": "60Gi"}, tier=None), None, id="no-tier-under-the-ceiling"),
        pytest.param(pod({"memory": "16Gi"}, tier="gpu"), None, id="gpu-tier"),
        pytest.param(
            pod({"nvidia.com/gpu": "8"}, tier="gpu"),
            "container base: nvidia.com/gpu limit 8 is above the policy ceiling 4",
            id="gpu-ceiling-slash-in-the-name",
        ),
        pytest.param(pod({"memory": "9Gi"}, escalated="9831Mi"), None, id="escalated"),
        pytest.param(
            pod({"memory": "65Gi"}, escalated="80Gi"),
            "container base: memory limit 65Gi is above the policy ceiling 64Gi",
            id="escalation-stops-at-the-ceiling",
        ),
        pytest.param(pod({"memory": "64Gi"}, labels={"app": "web"}), None, id="not-airflow"),
        pytest.param(pod({"memory": "8Gi"}, tier="no-such-tier"), None, id="unknown-tier"),
    ],
)
def test_pods_on_create(subject: dict[str, Any], message: str | None) -> None:
    said = admit(subject)
    if message is None:
        assert said is None
    else:
        assert said is not None and message in said
        assert said.startswith("podtier (admission policy): ")


def test_every_finding_is_listed_with_its_container() -> None:
    subject = pod({"cpu": "32", "memory": "100Gi"}, requests={"cpu": "20"})
    subject["spec"]["initContainers"] = [
        {"name": "init", "resources": {"limits": {"memory": "70Gi"}}}
    ]
    assert admit(subject) == (
        "podtier (admission policy): container base: cpu request 20 is above the policy ceiling "
        "16; container base: cpu limit 32 is above the policy ceiling 16; container base: memory "
        "limit 100Gi is above the policy ceiling 64Gi; container init: memory limit 70Gi is above "
        "the policy ceiling 64Gi"
    )


def test_a_resize_is_judged_by_the_old_pod_s_tier() -> None:
    old = pod({"cpu": "2", "memory": "4Gi"})
    resized = copy.deepcopy(old)
    resized["spec"]["containers"][0]["resources"]["limits"]["memory"] = "8Gi"
    assert "memory limit 8Gi is above tier medium's limit 4Gi" in (admit(resized, old) or "")
    allowed = copy.deepcopy(old)
    allowed["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1500m"
    assert admit(allowed, old) is None


@pytest.mark.parametrize(
    "rewrite",
    [
        pytest.param(lambda n: n.update({"podtier.io/tier": "heavy"}), id="changed"),
        pytest.param(lambda n: n.pop("podtier.io/tier"), id="removed"),
        pytest.param(lambda n: n.update({"podtier.io/escalated-memory": "60Gi"}), id="added"),
    ],
)
def test_podtier_annotations_may_not_change(rewrite) -> None:
    old = pod({"cpu": "2", "memory": "4Gi"})
    new = copy.deepcopy(old)
    rewrite(new["metadata"]["annotations"])
    assert admit(new, old) == (
        "podtier (admission policy): podtier's annotations are written at creation and may not "
        "change"
    )


def test_label_and_other_annotation_updates_are_not_matched() -> None:
    old = pod({"cpu": "2", "memory": "64Gi"})  # over its tier already (audit mode, say)
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["done"] = "True"
    new["metadata"]["annotations"]["airflow/x"] = "1"
    assert admit(new, old) is None


def test_new_parameters_take_effect_without_a_new_policy_object() -> None:
    """What a policy reload changes: the ConfigMap, not the CEL."""
    text = DEFAULT_POLICY.read_text().replace(
        'limits: {cpu: "2", memory: 4Gi}', 'limits: {cpu: "2", memory: 6Gi}'
    )
    bigger = load_policy_text([("bigger.yaml", text)])
    assert parameters(bigger)["tier.medium.memory"] == "6Gi"
    subject = pod({"memory": "5Gi"})
    assert admit(subject) is not None
    assert admit(subject, params=parameters(bigger)) is None


def test_the_binding_follows_the_mode_and_the_namespaces() -> None:
    audit_text = DEFAULT_POLICY.read_text().replace("mode: enforce", "mode: audit")
    audit = load_policy_text([("audit.yaml", audit_text)])
    _, binding, configmap = admission_policy(audit, "limits", "podtier", ["airflow"])
    assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    assert binding["spec"]["paramRef"] == {
        "name": "limits",
        "namespace": "podtier",
        "parameterNotFoundAction": "Deny",
    }
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][1] == {
        "key": "kubernetes.io/metadata.name",
        "operator": "In",
        "values": ["airflow"],
    }
    assert configmap["metadata"]["annotations"] == {"podtier.io/policy": audit.ident}
