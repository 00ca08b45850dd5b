"""The two webhook configurations: what they promise the API server, and which pods they get."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from tests.chart.chart_admission_match import labels_match, webhook_is_called
from tests.chart.chart_rendering import REPO_ROOT, Manifest, one, render, serving_certificate

EXECUTOR = {"kubernetes_executor": "True", "dag_id": "etl", "task_id": "load"}

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "admission"


def webhooks(values: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Manifest, Manifest]:
    objects = render(values, **kwargs)
    mutating = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    validating = one(objects, "ValidatingWebhookConfiguration")["webhooks"]
    assert len(mutating) == 1 and len(validating) == 1
    return mutating[0], validating[0]


def pod(labels: dict[str, str] | None) -> Manifest:
    metadata: Manifest = {"name": "p", "namespace": "airflow"}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": []}}


def test_defaults_fail_open_when_mutating_and_closed_when_validating() -> None:
    mutating, validating = webhooks()
    assert mutating["failurePolicy"] == "Ignore"
    assert mutating["reinvocationPolicy"] == "IfNeeded"
    assert validating["failurePolicy"] == "Fail"
    assert "reinvocationPolicy" not in validating


@pytest.mark.parametrize(
    ("values", "mutating_policy", "validating_policy"),
    [
        pytest.param(
            {"webhook": {"mutating": {"failurePolicy": "Fail"}}}, "Fail", "Fail", id="strict"
        ),
        pytest.param(
            {"webhook": {"validating": {"failurePolicy": "Ignore"}}},
            "Ignore",
            "Ignore",
            id="advisory",
        ),
    ],
)
def test_failure_policies_come_from_values(
    values: dict[str, Any], mutating_policy: str, validating_policy: str
) -> None:
    mutating, validating = webhooks(values)
    assert (mutating["failurePolicy"], validating["failurePolicy"]) == (
        mutating_policy,
        validating_policy,
    )


@pytest.mark.parametrize("timeout", [1, 5, 10])
def test_both_webhooks_are_v1_side_effect_free_pod_creates_with_the_timeout(timeout: int) -> None:
    """The mutating webhook sees pod CREATEs only; the validating one also UPDATEs of a pod and
    of its resize subresource (in-place resize)."""
    mutating, validating = webhooks({"webhook": {"timeoutSeconds": timeout}})
    for webhook in (mutating, validating):
        assert len(webhook["name"].split(".")) >= 3, "the API server wants a qualified name"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["sideEffects"] == "None"
        assert webhook["timeoutSeconds"] == timeout
    rule = {"apiGroups": [""], "apiVersions": ["v1"], "scope": "Namespaced"}
    assert mutating["rules"] == [{**rule, "operations": ["CREATE"], "resources": ["pods"]}]
    assert validating["rules"] == [
        {**rule, "operations": ["CREATE", "UPDATE"], "resources": ["pods", "pods/resize"]}
    ]


def _airflow(
    labels: dict[str, str], memory: str = "4Gi", tier: str | None = "medium"
) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": labels,
            **({"annotations": {"podtier.io/tier": tier, "x": "y"}} if tier else {}),
        },
        "spec": {"containers": [{"name": "base", "resources": {"limits": {"memory": memory}}}]},
    }


@pytest.mark.parametrize(
    ("old", "new", "sub_resource", "called"),
    [
        pytest.param(_airflow(EXECUTOR), _airflow(EXECUTOR, "64Gi"), "resize", True, id="resize"),
        pytest.param(_airflow(EXECUTOR), _airflow(EXECUTOR, "64Gi"), "", True, id="update-spec"),
        pytest.param(
            _airflow(EXECUTOR), _airflow({**EXECUTOR, "done": "1"}), "", False, id="label-only"
        ),
        pytest.param(_airflow(EXECUTOR), _airflow({}, "64Gi"), "", True, id="labels-dropped"),
        pytest.param(
            _airflow(EXECUTOR), _airflow(EXECUTOR, tier="heavy"), "", True, id="tier-rewritten"
        ),
        pytest.param(_airflow(EXECUTOR), _airflow(EXECUTOR, tier=None), "", True, id="tier-gone"),
        pytest.param(_airflow(EXECUTOR, tier=None), _airflow(EXECUTOR), "", True, id="tier-added"),
        pytest.param(_airflow({}), _airflow({}, "64Gi"), "resize", False, id="not-airflow"),
    ],
)
def test_the_validating_webhook_sees_updates_of_the_spec_or_podtier_annotations_of_airflow_pods(
    old: dict[str, Any], new: dict[str, Any], sub_resource: str, called: bool
) -> None:
    mutating, validating = webhooks()
    assert (
        webhook_is_called(
            validating,
            operation="UPDATE",
            pod=new,
            old_pod=old,
            sub_resource=sub_resource,
            namespace="airflow",
        )
        is called
    )
    assert not webhook_is_called(
        mutating, operation="UPDATE", pod=new, old_pod=old, sub_resource=sub_resource, namespace="a"
    )


def test_webhooks_call_the_service_on_443_at_their_paths() -> None:
    objects = render()
    service = one(objects, "Service")
    mutating, validating = webhooks()
    for webhook, path in [(mutating, "/mutate"), (validating, "/validate")]:
        assert webhook["clientConfig"]["service"] == {
            "name": service["metadata"]["name"],
            "namespace": "podtier",
            "path": path,
            "port": 443,
        }
    assert [port["port"] for port in service["spec"]["ports"]] == [443]


def _fixture_cases() -> list[Any]:
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        request = json.loads(path.read_text())["request"]
        cases.append(pytest.param(request, id=path.stem.split("_")[0]))
    assert cases, f"no admission fixtures in {FIXTURES}"
    return cases


def _is_airflow_pod_per_policy(labels: dict[str, str]) -> bool:
    policy = yaml.safe_load((REPO_ROOT / "policies" / "default.yaml").read_text())
    return any(labels_match(selector, labels) for selector in policy["spec"]["airflowPods"])


@pytest.mark.parametrize("request_", _fixture_cases())
def test_airflow_fixture_pods_reach_both_webhooks_on_create_only(request_: Manifest) -> None:
    subject = request_["object"] or request_["oldObject"]
    for webhook in webhooks():
        called = webhook_is_called(
            webhook,
            operation=request_["operation"],
            pod=subject,
            old_pod=request_.get("oldObject"),
            namespace=request_["namespace"],
        )
        assert called == (request_["operation"] == "CREATE")


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({"kubernetes_executor": "True"}, id="executor"),
        pytest.param({"kubernetes_executor": "False"}, id="executor-false"),
        pytest.param({"airflow-worker": "7"}, id="airflow-worker"),
        pytest.param({"airflow-worker": ""}, id="airflow-worker-empty"),
        pytest.param({"kubernetes_pod_operator": "True"}, id="kpo"),
        pytest.param({"kubernetes_pod_operator": "true"}, id="kpo-lowercase"),
        pytest.param({"app": "nginx"}, id="other-app"),
        pytest.param({}, id="no-labels"),
        pytest.param(None, id="labels-absent"),
    ],
)
def test_match_conditions_select_exactly_the_default_policys_airflow_pods(
    labels: dict[str, str] | None,
) -> None:
    for webhook in webhooks():
        called = webhook_is_called(webhook, operation="CREATE", pod=pod(labels), namespace="etl")
        assert called == _is_airflow_pod_per_policy(labels or {})


def test_object_selector_alone_could_not_express_the_airflow_or() -> None:
    """Why matchConditions: the policy names three alternatives, and a LabelSelector ANDs."""
    policy = yaml.safe_load((REPO_ROOT / "policies" / "default.yaml").read_text())
    assert len(policy["spec"]["airflowPods"]) == 3
    mutating, _ = webhooks()
    assert "objectSelector" not in mutating
    assert [condition["name"] for condition in mutating["matchConditions"]] == ["airflow-pods"]


def test_without_the_airflow_filter_every_pod_in_selected_namespaces_is_sent() -> None:
    mutating, validating = webhooks({"webhook": {"airflowPodsOnly": False}})
    assert "matchConditions" not in mutating
    assert [c["name"] for c in validating["matchConditions"]] == [
        "spec-or-podtier-annotations-change"
    ]
    for webhook in (mutating, validating):
        assert webhook_is_called(webhook, operation="CREATE", pod=pod({"app": "x"}), namespace="a")


def test_extra_match_conditions_and_object_selector_narrow_further() -> None:
    values = {
        "webhook": {
            "matchConditions": [
                {"name": "not-dry-run", "expression": "!has(object.metadata.generateName)"}
            ],
            "objectSelector": {"matchLabels": {"team": "data"}},
        }
    }
    airflow_data_pod = pod({"kubernetes_executor": "True", "team": "data"})
    airflow_other_pod = pod({"kubernetes_executor": "True", "team": "web"})
    for webhook in webhooks(values):
        assert webhook_is_called(webhook, operation="CREATE", pod=airflow_data_pod, namespace="a")
        assert not webhook_is_called(
            webhook, operation="CREATE", pod=airflow_other_pod, namespace="a"
        )


@pytest.mark.parametrize(
    ("release_namespace", "values", "namespace", "called"),
    [
        pytest.param("podtier", {}, "airflow", True, id="airflow"),
        pytest.param("podtier", {}, "podtier", False, id="own-namespace"),
        pytest.param("platform", {}, "platform", False, id="other-release-namespace"),
        pytest.param("platform", {}, "podtier", True, id="podtier-not-special-elsewhere"),
        pytest.param("podtier", {}, "kube-system", False, id="kube-system"),
        pytest.param(
            "podtier", {"webhook": {"namespaces": ["airflow"]}}, "airflow", True, id="listed"
        ),
        pytest.param(
            "podtier", {"webhook": {"namespaces": ["airflow"]}}, "etl", False, id="not-listed"
        ),
        pytest.param(
            "podtier",
            {"webhook": {"excludeNamespaces": ["airflow-dev"]}},
            "airflow-dev",
            False,
            id="excluded",
        ),
    ],
)
def test_namespace_selector_spares_podtier_and_kube_system(
    release_namespace: str, values: dict[str, Any], namespace: str, called: bool
) -> None:
    airflow_pod = pod({"kubernetes_executor": "True"})
    for webhook in webhooks(values, namespace=release_namespace):
        assert (
            webhook_is_called(webhook, operation="CREATE", pod=airflow_pod, namespace=namespace)
            == called
        )


def test_namespace_label_selector_is_anded_with_the_name_lists() -> None:
    values = {"webhook": {"namespaceSelector": {"matchLabels": {"podtier.io/enabled": "true"}}}}
    airflow_pod = pod({"kubernetes_executor": "True"})
    for webhook in webhooks(values):
        assert webhook_is_called(
            webhook,
            operation="CREATE",
            pod=airflow_pod,
            namespace="etl",
            namespace_labels={"podtier.io/enabled": "true"},
        )
        assert not webhook_is_called(webhook, operation="CREATE", pod=airflow_pod, namespace="etl")


def test_self_mode_leaves_ca_bundle_to_podtier() -> None:
    for webhook in webhooks():
        assert "caBundle" not in webhook["clientConfig"]


def test_cert_manager_mode_asks_the_cainjector_for_the_certificates_ca() -> None:
    objects = render({"certs": {"mode": "cert-manager"}})
    certificate = serving_certificate(objects)
    expected = f"podtier/{certificate['metadata']['name']}"
    for kind in ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]:
        configuration = one(objects, kind)
        annotations = configuration["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == expected
        assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]


PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(PEM, id="pem"),
        pytest.param(base64.b64encode(PEM.encode()).decode(), id="base64"),
    ],
)
def test_secret_mode_puts_the_given_ca_in_ca_bundle(given: str) -> None:
    values = {"certs": {"mode": "secret", "secret": {"name": "mine", "caBundle": given}}}
    for webhook in webhooks(values):
        bundle = webhook["clientConfig"]["caBundle"]
        assert base64.b64decode(bundle).decode().strip() == PEM.strip()
