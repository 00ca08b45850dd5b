"""The chart's ValidatingAdmissionPolicy: podtier's own CEL (the file the chart ships is the
generator's output), the default policy's numbers as its parameters, on where the cluster
serves the API (or when asked), and podtier keeping the parameters when it can."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import yaml

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.policy.admission_policy import parameters, policy_spec
from podtier.webhook.policy.load import load_policy
from tests.chart.chart_rendering import CHART_DIR, of_kind, one, render, serve_flags

SPEC_FILE = CHART_DIR / "files" / "admission-policy-spec.yaml"
HEADER = (
    "# Written by podtier's generator (webhook/policy/admission_policy.py, `podtier policy vap`);\n"
    "# tests/chart/test_chart_admission_policy.py keeps it equal: regenerate with\n"
    "# python -m tests.chart.test_chart_admission_policy\n"
)
ON = {"admissionPolicy": {"enabled": True}}
KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def generated_spec_file() -> str:
    return HEADER + yaml.safe_dump(policy_spec(), sort_keys=False, width=1000)


def test_the_chart_ships_podtier_s_own_cel() -> None:
    assert SPEC_FILE.read_text() == generated_spec_file(), (
        "stale: python -m tests.chart.test_chart_admission_policy"
    )
    assert one(render(ON), "ValidatingAdmissionPolicy")["spec"] == policy_spec()


def params_configmap(objects: list[dict[str, Any]]) -> dict[str, Any]:
    name = one(objects, "ValidatingAdmissionPolicyBinding")["spec"]["paramRef"]["name"]
    return next(o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"] == name)


def test_the_parameters_are_the_default_policy_s_numbers() -> None:
    objects = render(ON)
    assert params_configmap(objects)["data"] == parameters(load_policy([DEFAULT_POLICY]))


@pytest.mark.parametrize(
    ("values", "actions"),
    [
        pytest.param({}, ["Deny"], id="enforce"),
        pytest.param({"policies": {"mode": "audit"}}, ["Warn", "Audit"], id="audit"),
    ],
)
def test_the_binding_follows_the_mode_and_the_webhook_s_namespaces(
    values: dict[str, Any], actions: list[str]
) -> None:
    objects = render({**ON, **values, "webhook": {"namespaces": ["airflow"]}})
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["validationActions"] == actions
    webhook = one(objects, "ValidatingWebhookConfiguration")["webhooks"][0]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == webhook["namespaceSelector"]
    assert binding["spec"]["paramRef"]["parameterNotFoundAction"] == "Deny"


@pytest.mark.parametrize(
    ("enabled", "rendered"),
    [
        # Helm's offline capabilities (helm template) do not list ValidatingAdmissionPolicy; a
        # live install lists what the cluster serves.
        pytest.param("auto", False, id="auto-offline"),
        pytest.param(True, True, id="true"),
        pytest.param(False, False, id="false"),
    ],
)
def test_on_where_the_cluster_serves_it_or_when_asked(enabled: Any, rendered: bool) -> None:
    objects = render({"admissionPolicy": {"enabled": enabled}})
    assert all(bool(of_kind(objects, kind)) is rendered for kind in KINDS)
    assert ("--admission-policy-params" in serve_flags(objects)) is rendered


def test_podtier_keeps_the_parameters_with_a_lease_and_rights_on_that_one_configmap() -> None:
    objects = render(ON)
    name = params_configmap(objects)["metadata"]["name"]
    assert serve_flags(objects)["--admission-policy-params"] == name
    roles = {r["metadata"]["name"]: r["rules"] for r in of_kind(objects, "Role")}
    params_rules = next(rules for n, rules in roles.items() if n.endswith("admission-params"))
    assert {"resourceNames": [name], "verbs": ["get", "update"]}.items() <= params_rules[0].items()
    assert any(rule["resources"] == ["leases"] for rules in roles.values() for rule in rules), (
        "the Lease holder writes"
    )


def test_without_the_cluster_watch_podtier_does_not_write_them() -> None:
    objects = render({**ON, "headroom": {"enabled": False}, "learning": {"enabled": False}})
    assert "--admission-policy-params" not in serve_flags(objects)
    assert of_kind(objects, "ValidatingAdmissionPolicy")


if __name__ == "__main__":
    SPEC_FILE.write_text(generated_spec_file())
    print(f"wrote {SPEC_FILE}", file=sys.stderr)
