"""Every ci/ scenario passes the schema, renders, lints clean in strict mode, and every object
it renders validates against the Kubernetes 1.30 schemas."""

from __future__ import annotations

import copy
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest

from tests.chart.chart_rendering import (
    CHART_DIR,
    NAMESPACE,
    SCENARIO_FILES,
    chart,
    one,
    render,
    scenario_values,
)

KUBE_VERSION = "1.30.0"
# Custom resources kubernetes-validate has no schema for (cert-manager's).
UNKNOWN_TO_VALIDATOR = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
SCENARIOS = [
    pytest.param(path, id=path.name.removesuffix("-values.yaml")) for path in SCENARIO_FILES
]


def test_every_scenario_the_issue_names_has_a_values_file() -> None:
    names = {path.name for path in SCENARIO_FILES}
    assert names == {
        "default-values.yaml",
        "cert-manager-values.yaml",
        "existing-secret-values.yaml",
        "audit-mode-values.yaml",
        "headroom-off-values.yaml",
        "learning-prometheus-values.yaml",  # issue 15
    }


@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_passes_the_values_schema(path: Path) -> None:
    chart().validate_schema(scenario_values(path))


@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_lints_clean_in_strict_mode(path: Path) -> None:
    report = helm_python.lint(
        CHART_DIR, scenario_values(path), strict=True, namespace=NAMESPACE, kube_version="v1.30.0"
    )
    assert report["errors"] == []
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario_objects_validate_against_kubernetes_schemas(path: Path) -> None:
    objects = render(scenario_values(path))
    assert objects, "the scenario rendered nothing"
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in UNKNOWN_TO_VALIDATOR:
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_validator_catches_an_unknown_field_in_a_rendered_object() -> None:
    deployment = copy.deepcopy(one(render(), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["slep"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
