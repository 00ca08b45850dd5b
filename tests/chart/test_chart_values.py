"""Values: documented in place, listed in the README, agreeing with the schema; bad and
conflicting values refused with a message; the policies ConfigMap built from them."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest
import yaml

from tests.chart.chart_rendering import CHART_DIR, REPO_ROOT, chart, notes, one, render
from tests.chart.chart_values_doc import readme_table_section, value_docs, values_table


def schema_leaf_keys(schema: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, child in schema.get("properties", {}).items():
        if "properties" in child:
            keys |= schema_leaf_keys(child, f"{prefix}{name}.")
        keys.add(f"{prefix}{name}")
    return keys


def test_every_value_is_documented_in_place() -> None:
    undocumented = [doc.key for doc in value_docs() if not doc.description]
    assert undocumented == []


def test_readme_table_lists_every_value_as_values_yaml_documents_it() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    assert readme_table_section(readme) == values_table(value_docs()), (
        "README values table is stale: run python tests/chart/chart_values_doc.py --write"
    )


def test_schema_and_values_yaml_name_the_same_keys() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    in_values = {doc.key for doc in value_docs()}  # raises if a values key is missing in schema
    parents = {key.rsplit(".", 1)[0] for key in in_values if "." in key}

    def accounted_for(key: str) -> bool:
        inside_a_value = any(key.startswith(value + ".") for value in in_values)
        return key in in_values or key in parents or inside_a_value

    missing = {key for key in schema_leaf_keys(schema) - {"global"} if not accounted_for(key)}
    assert missing == set(), "schema keys missing from values.yaml"


def test_schema_refuses_unknown_keys() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="replicas"):
        chart().validate_schema({"replicas": 3})


def test_values_yaml_passes_its_own_schema() -> None:
    chart().validate_schema(yaml.safe_load((CHART_DIR / "values.yaml").read_text()))


@pytest.mark.parametrize(
    ("values", "path"),
    [
        pytest.param({"replicaCount": 0}, "/replicaCount", id="no-replicas"),
        pytest.param({"certs": {"mode": "vault"}}, "/certs/mode", id="unknown-cert-mode"),
        pytest.param({"webhook": {"timeoutSeconds": 40}}, "/webhook/timeoutSeconds", id="timeout"),
        pytest.param({"webhook": {"timeoutSeconds": 0}}, "/webhook/timeoutSeconds", id="timeout-0"),
        pytest.param(
            {"webhook": {"mutating": {"failurePolicy": "Retry"}}},
            "/webhook/mutating/failurePolicy",
            id="failure-policy",
        ),
        pytest.param({"logLevel": "trace"}, "/logLevel", id="log-level"),
        pytest.param({"policies": {"mode": "warn"}}, "/policies/mode", id="policy-mode"),
        pytest.param({"service": {"targetPort": 443}}, "/service/targetPort", id="privileged"),
        pytest.param({"cleanup": {"after": "soon"}}, "/cleanup/after", id="cleanup-after"),
        pytest.param(
            {"learning": {"prometheusURL": "prometheus:9090"}},
            "/learning/prometheusURL",
            id="prometheus-not-a-url",
        ),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(values: dict[str, Any], path: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        chart().validate_schema(values)
    assert path in str(refused.value)


def test_install_refuses_what_the_schema_refuses() -> None:
    with pytest.raises(helm_python.HelmError, match="replicaCount"):
        render({"replicaCount": 0})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"certs": {"mode": "secret"}}, "needs certs.secret.name", id="secret-no-name"),
        pytest.param(
            {"certs": {"mode": "secret", "secret": {"name": "x"}}},
            "needs certs.secret.caBundle",
            id="secret-no-ca",
        ),
        pytest.param(
            {"certs": {"secret": {"name": "x"}}}, "set certs.mode=secret", id="secret-in-self-mode"
        ),
        pytest.param(
            {"certs": {"certManager": {"issuerRef": {"name": "ca"}}}},
            "set certs.mode=cert-manager",
            id="issuer-in-self-mode",
        ),
        pytest.param(
            {"cleanup": {"enabled": True}, "headroom": {"enabled": False}},
            "needs headroom.enabled=true",
            id="cleanup-without-watch",
        ),
        pytest.param(
            {"webhook": {"namespaces": ["podtier"]}},
            'must not list "podtier"',
            id="own-namespace",
        ),
        pytest.param(
            {"webhook": {"namespaces": ["kube-system"]}},
            'must not list "kube-system"',
            id="kube-system",
        ),
        pytest.param(
            {"webhook": {"namespaces": ["a"], "excludeNamespaces": ["a"]}},
            "keep it in one",
            id="listed-and-excluded",
        ),
        pytest.param(
            {"policies": {"default": False}}, "podtier needs at least one policy", id="no-policy"
        ),
        pytest.param(
            {"policies": {"default": False, "mode": "audit", "extra": {"a.yaml": "x: 1"}}},
            "set `mode:` in your own policy files",
            id="mode-without-default",
        ),
        pytest.param(
            {"policies": {"extra": {"team.yml": "x: 1"}}}, "must end in .yaml", id="extra-suffix"
        ),
        pytest.param(
            {"policies": {"extra": {"default.yaml": "x: 1"}}},
            "rename it",
            id="extra-shadows-default",
        ),
        pytest.param(
            {"podDisruptionBudget": {"minAvailable": 2}},
            "must be below replicaCount",
            id="budget-blocks-drains",
        ),
        pytest.param(
            {"preStopSleepSeconds": 30, "terminationGracePeriodSeconds": 30},
            "must exceed preStopSleepSeconds",
            id="grace-too-short",
        ),
        pytest.param(
            {"networkPolicy": {"enabled": True}}, "needs networkPolicy.apiServerCIDRs", id="netpol"
        ),
        pytest.param({"metrics": {"port": 8443}}, "choose another port", id="metrics-on-https"),
        pytest.param(
            {"learning": {"enabled": False, "prometheusURL": "http://prometheus:9090"}},
            "learning.prometheusURL is set but learning is off",
            id="prometheus-without-learning",
        ),
    ],
)
def test_conflicting_values_fail_saying_what_to_set(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError) as refused:
        render(values)
    assert message in str(refused.value)


def test_chart_ships_the_default_policy_byte_for_byte() -> None:
    shipped = (CHART_DIR / "files" / "default.yaml").read_bytes()
    assert shipped == (REPO_ROOT / "policies" / "default.yaml").read_bytes(), (
        "copy policies/default.yaml to charts/podtier/files/default.yaml"
    )


def policy_files(values: dict[str, Any] | None = None) -> dict[str, str]:
    data: dict[str, str] = one(render(values), "ConfigMap")["data"]
    return data


def test_policies_config_map_carries_the_default_policy_unchanged() -> None:
    assert policy_files() == {"default.yaml": (REPO_ROOT / "policies" / "default.yaml").read_text()}


def test_audit_mode_changes_only_the_default_policys_mode() -> None:
    original = yaml.safe_load((REPO_ROOT / "policies" / "default.yaml").read_text())
    audited = yaml.safe_load(policy_files({"policies": {"mode": "audit"}})["default.yaml"])
    assert original["spec"]["mode"] == "enforce"
    assert audited["spec"].pop("mode") == "audit"
    original["spec"].pop("mode")
    assert audited == original
    assert "audit" in notes({"policies": {"mode": "audit"}})


TEAM_POLICY = "apiVersion: podtier.io/v1alpha1\nkind: TierPolicy\nmetadata:\n  name: team\n"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param({"team.yaml": TEAM_POLICY}, {"team.yaml": TEAM_POLICY}, id="map-of-text"),
        pytest.param(
            [TEAM_POLICY, TEAM_POLICY],
            {"extra-0.yaml": TEAM_POLICY, "extra-1.yaml": TEAM_POLICY},
            id="list",
        ),
        pytest.param(
            {"team.yaml": yaml.safe_load(TEAM_POLICY)},
            {"team.yaml": yaml.safe_dump(yaml.safe_load(TEAM_POLICY))},
            id="map-of-objects",
        ),
    ],
)
def test_extra_policies_sit_beside_the_default_one(extra: Any, expected: dict[str, str]) -> None:
    files = policy_files({"policies": {"extra": extra}})
    assert set(files) == {"default.yaml", *expected}
    for name, text in expected.items():
        assert yaml.safe_load(files[name]) == yaml.safe_load(text)


def test_default_policy_can_be_replaced() -> None:
    files = policy_files({"policies": {"default": False, "extra": {"ours.yaml": TEAM_POLICY}}})
    assert set(files) == {"ours.yaml"}
