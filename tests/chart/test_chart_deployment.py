"""The Deployment and what keeps it available: security, probes, drain, spread, disruption budget,
and the `podtier serve` command line."""

from __future__ import annotations

import argparse
import base64
import tomllib
from typing import Any

import pytest
import yaml

from podtier.webhook.commands.main import build_parser
from tests.chart.chart_rendering import (
    CHART_DIR,
    REPO_ROOT,
    Manifest,
    container,
    notes,
    of_kind,
    one,
    pod_spec,
    render,
    serve_flags,
    serving_certificate,
)

# The `podtier serve` surface the chart may use (the CLI's contract).
SERVE_FLAGS = {
    "--cert-dir",
    "--host",
    "--port",
    "--metrics-port",
    "--policy",
    "--cluster",
    "--stale-after",
    "--peers",
    "--log-level",
    "--manage-certs",
    "--cert-secret",
    "--namespace",
    "--service",
    "--mutating-webhook",
    "--validating-webhook",
    "--cleanup-after",
    "--learning",
    "--usage-prometheus",
    "--escalation-key",
    "--admission-policy-params",
}
SECRET_MODE = {"certs": {"mode": "secret", "secret": {"name": "mine", "caBundle": "Q0E="}}}
MODES = [
    pytest.param({}, id="self"),
    pytest.param({"certs": {"mode": "cert-manager"}}, id="cert-manager"),
    pytest.param(SECRET_MODE, id="secret"),
]


def mount(objects: list[Manifest], path: str) -> tuple[Manifest, Manifest]:
    """(volumeMount, volume) for the mount at `path`."""
    volume_mount = next(m for m in container(objects)["volumeMounts"] if m["mountPath"] == path)
    volume = next(v for v in pod_spec(objects)["volumes"] if v["name"] == volume_mount["name"])
    return volume_mount, volume


@pytest.mark.parametrize("values", MODES)
def test_pod_meets_the_restricted_pod_security_standard(values: dict[str, Any]) -> None:
    objects = render(values)
    pod_security = pod_spec(objects)["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] > 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(objects)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    assert security.get("privileged", False) is False
    spec = pod_spec(objects)
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(forbidden, False)
    for volume in spec["volumes"]:
        assert set(volume) & {"hostPath"} == set()


def test_tmp_is_a_writable_empty_dir_on_the_read_only_root() -> None:
    tmp_mount, tmp_volume = mount(render(), "/tmp")
    assert not tmp_mount.get("readOnly", False)
    assert "emptyDir" in tmp_volume


def test_probes_check_health_and_readiness_over_https() -> None:
    main = container(render())
    https_port = next(p for p in main["ports"] if p["name"] == "https")["containerPort"]
    assert serve_flags(render())["--port"] == str(https_port)
    expected = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in expected.items():
        assert main[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}


def test_pre_stop_pauses_without_a_shell_and_within_the_grace_period() -> None:
    objects = render()
    pre_stop = container(objects)["lifecycle"]["preStop"]
    assert set(pre_stop) == {"sleep"}, "the image has no shell, so no exec handler"
    assert 0 < pre_stop["sleep"]["seconds"] < pod_spec(objects)["terminationGracePeriodSeconds"]


def test_pre_stop_pause_can_be_turned_off() -> None:
    assert "lifecycle" not in container(render({"preStopSleepSeconds": 0}))


def test_resources_are_set() -> None:
    resources = container(render())["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_two_replicas_spread_over_nodes_and_zones_with_a_budget() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    selector = deployment["spec"]["selector"]["matchLabels"]
    spread = pod_spec(objects)["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"] == selector
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": selector},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def test_one_replica_gets_no_budget_that_would_block_drains_and_a_warning() -> None:
    assert of_kind(render({"replicaCount": 1}), "PodDisruptionBudget") == []
    assert "WARNING" in notes({"replicaCount": 1})
    assert "WARNING" not in notes()


def test_selector_labels_are_name_and_instance_and_every_object_is_labelled() -> None:
    objects = render()
    selector = one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "podtier",
        "app.kubernetes.io/instance": "podtier",
    }
    assert one(objects, "Service")["spec"]["selector"] == selector
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels.items() >= selector.items(), obj["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == labels_version()


def labels_version() -> str:
    return str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"])


@pytest.mark.parametrize(
    ("release", "values", "expected"),
    [
        pytest.param("podtier", {}, "podtier", id="release-contains-chart"),
        pytest.param("airflow", {}, "airflow-podtier", id="release-plus-chart"),
        pytest.param("x", {"fullnameOverride": "tiers"}, "tiers", id="override"),
        pytest.param("a" * 53, {}, "a" * 53 + "-podtier", id="long-release"),
    ],
)
def test_full_name_is_truncated_to_63(release: str, values: dict[str, Any], expected: str) -> None:
    objects = render(values, name=release)
    name = one(objects, "Deployment")["metadata"]["name"]
    assert name == expected[:63].rstrip("-")
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63, (obj["kind"], obj["metadata"]["name"])


def test_image_defaults_to_the_app_version_and_can_be_pinned() -> None:
    assert container(render())["image"] == f"ghcr.io/podtier/podtier:{labels_version()}"
    digest = "sha256:" + "a" * 64
    assert container(render({"image": {"digest": digest}}))["image"].endswith("@" + digest)


def test_app_version_follows_the_package_version() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert labels_version() == pyproject["project"]["version"]


def test_chart_requires_the_kubernetes_version_its_fields_need() -> None:
    # matchConditions (GA) and lifecycle.preStop.sleep (on by default) arrive in 1.30.
    assert yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["kubeVersion"] == ">=1.30.0-0"


def real_serve_parser() -> argparse.ArgumentParser:
    """The `serve` subcommand's parser from podtier's own CLI."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve: argparse.ArgumentParser = action.choices["serve"]
            return serve
    raise AssertionError("podtier's CLI has no subcommands")


@pytest.mark.parametrize("values", MODES)
def test_serve_uses_only_flags_of_the_cli_contract(values: dict[str, Any]) -> None:
    assert set(serve_flags(render(values))) <= SERVE_FLAGS


@pytest.mark.parametrize(
    "values",
    [*MODES, pytest.param({"headroom": {"enabled": False}, "metrics": {"port": 9090}}, id="off")],
)
def test_real_cli_accepts_the_flags_it_already_has(values: dict[str, Any]) -> None:
    """The flags podtier's parser knows today parse with the values the chart gives them.
    (Flags of the contract that other work has yet to add are held to SERVE_FLAGS above.)"""
    parser = real_serve_parser()
    known = set(parser._option_string_actions)
    args = [arg for arg in container(render(values))["args"] if arg.split("=")[0] in known]
    parsed = build_parser().parse_args(["serve", *args])
    flags = serve_flags(render(values))
    assert parsed.port == int(flags["--port"] or 0)
    assert parsed.cluster == flags["--cluster"]
    assert parsed.log_level == flags["--log-level"]
    assert parsed.metrics_port == int(flags.get("--metrics-port") or 0)


def test_self_mode_writes_certs_to_memory_and_names_what_it_manages() -> None:
    objects = render()
    flags = serve_flags(objects)
    assert "--manage-certs" in flags
    assert flags["--namespace"] == "podtier"
    assert flags["--service"] == one(objects, "Service")["metadata"]["name"]
    cert_mount, cert_volume = mount(objects, flags["--cert-dir"] or "")
    assert not cert_mount["readOnly"]
    assert cert_volume["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize("values", MODES)
def test_the_escalation_key_is_a_random_kept_secret_mounted_read_only(
    values: dict[str, Any],
) -> None:
    """Every replica reads the same key, from a Secret the chart makes once (48 random
    characters, kept on uninstall): podtier's escalations verify on whichever replica judges."""
    objects = render(values)
    key_path = serve_flags(objects)["--escalation-key"] or ""
    key_mount, key_volume = mount(objects, key_path.rsplit("/", 1)[0])
    assert key_mount["readOnly"] is True
    secret = next(
        o
        for o in of_kind(objects, "Secret")
        if o["metadata"]["name"] == key_volume["secret"]["secretName"]
    )
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    key = base64.b64decode(secret["data"][key_path.rsplit("/", 1)[1]])
    assert len(key) == 48 and key.isalnum()


@pytest.mark.parametrize(
    ("values", "secret"),
    [
        pytest.param({"certs": {"mode": "cert-manager"}}, "podtier-tls", id="cert-manager"),
        pytest.param(SECRET_MODE, "mine", id="secret"),
    ],
)
def test_other_modes_mount_the_secret_read_only(values: dict[str, Any], secret: str) -> None:
    objects = render(values)
    flags = serve_flags(objects)
    assert "--manage-certs" not in flags
    cert_mount, cert_volume = mount(objects, flags["--cert-dir"] or "")
    assert cert_mount["readOnly"] is True
    assert cert_volume["secret"]["secretName"] == secret
    if values["certs"]["mode"] == "cert-manager":
        assert serving_certificate(objects)["spec"]["secretName"] == secret


def test_cert_manager_certificate_covers_the_service_dns_names() -> None:
    objects = render({"certs": {"mode": "cert-manager"}})
    service = one(objects, "Service")["metadata"]["name"]
    certificate = serving_certificate(objects)
    assert f"{service}.podtier.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["usages"] == ["server auth"]


def test_cert_manager_serving_certificate_comes_from_a_chart_made_ca() -> None:
    """Renewing the serving certificate keeps the CA the webhooks trust."""
    objects = render({"certs": {"mode": "cert-manager"}})
    issuers = {issuer["metadata"]["name"]: issuer["spec"] for issuer in of_kind(objects, "Issuer")}
    certificates = of_kind(objects, "Certificate")
    ca = next(c for c in certificates if c["spec"].get("isCA"))
    assert issuers[ca["spec"]["issuerRef"]["name"]] == {"selfSigned": {}}
    serving_issuer = issuers[serving_certificate(objects)["spec"]["issuerRef"]["name"]]
    assert serving_issuer == {"ca": {"secretName": ca["spec"]["secretName"]}}


def test_cert_manager_can_use_an_existing_cluster_issuer() -> None:
    values = {
        "certs": {
            "mode": "cert-manager",
            "certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "internal-ca"}},
        }
    }
    objects = render(values)
    assert of_kind(objects, "Issuer") == []
    assert one(objects, "Certificate")["spec"]["issuerRef"] == {
        "name": "internal-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


def test_headroom_flags_follow_values() -> None:
    assert serve_flags(render())["--cluster"] == "auto"
    flags = serve_flags(render({"headroom": {"staleAfterSeconds": 90}}))
    assert flags["--stale-after"] == "90"
    off = serve_flags(render({"headroom": {"enabled": False}}))
    assert off["--cluster"] == "none" and "--stale-after" not in off


def test_metrics_port_opens_a_container_and_service_port() -> None:
    objects = render({"metrics": {"port": 9090}})
    assert serve_flags(objects)["--metrics-port"] == "9090"
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container(objects)[
        "ports"
    ]
    assert [p["port"] for p in one(objects, "Service")["spec"]["ports"]] == [443, 9090]
    assert "--metrics-port" not in serve_flags(render())


def test_network_policy_admits_only_the_api_server_to_the_webhook_port() -> None:
    values = {"networkPolicy": {"enabled": True, "apiServerCIDRs": ["10.0.0.1/32"]}}
    objects = render(values)
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [
        {
            "ports": [{"port": "https", "protocol": "TCP"}],
            "from": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
        }
    ]
    assert of_kind(render(), "NetworkPolicy") == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param({}, ["self", "mutating=Ignore", "validating=Fail"], id="defaults"),
        pytest.param(
            {
                "certs": {"mode": "cert-manager"},
                "webhook": {"validating": {"failurePolicy": "Ignore"}},
            },
            ["cert-manager", "validating=Ignore"],
            id="cert-manager-advisory",
        ),
    ],
)
def test_notes_print_the_cert_mode_and_failure_policies(
    values: dict[str, Any], expected: list[str]
) -> None:
    text = notes(values)
    for fragment in expected:
        assert fragment in text
