"""The ValidatingAdmissionPolicy on a real Kubernetes 1.34 API server (admissionregistration v1,
served and enforced by default), installed as the chart renders it, with podtier's webhooks
registered as the chart renders them but pointed at a port where nothing answers and the
validating webhook's failurePolicy set to Ignore (the advisory set-up): podtier is down and
would let everything through, yet

- an oversized pod is denied (its tier's limit, or the ceilings when it carries no tier);
- an oversized resize (`pods/resize`) is denied and a permitted one stored;
- rewriting `podtier.io/tier` ahead of a resize is denied;
- a policy reload in `podtier serve --admission-policy-params` reaches the parameters, and the
  API server judges by the new numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from podtier.policies import DEFAULT_POLICY
from tests.chart.chart_install import install_admission_policy, install_webhooks, rendered
from tests.conftest import Server, free_port, run_podtier
from tests.controlplane import ControlPlane, running_control_plane, wait

NS = "airflow"
VALUES = {
    "admissionPolicy": {"enabled": True},
    "webhook": {"namespaces": [NS], "validating": {"failurePolicy": "Ignore"}},
}


@pytest.fixture(scope="module")
def plane_1_34(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    yield from running_control_plane(request, tmp_path_factory, version="1.34")


@pytest.fixture(scope="module")
def installed(plane_1_34: ControlPlane) -> tuple[ControlPlane, str]:
    plane = plane_1_34
    plane.ensure_namespace(NS)
    objects = rendered(VALUES)
    install_webhooks(plane, objects, f"https://127.0.0.1:{free_port()}", plane.ca_pem)
    name = install_admission_policy(plane, objects)
    # the API server picks new policies and bindings up asynchronously
    wait(
        "the admission policy enforced",
        lambda: refusal(plane, pod("probe", {"cpu": "2", "memory": "64Gi"}), dry_run=True),
    )
    return plane, name


@pytest.fixture
def cp(installed: tuple[ControlPlane, str]) -> ControlPlane:
    plane = installed[0]
    for existing in plane.core.list_namespaced_pod(NS).items:
        plane.core.delete_namespaced_pod(existing.metadata.name, NS, grace_period_seconds=0)
    return plane


def pod(name: str, limits: dict[str, str], tier: str | None = "medium") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"kubernetes_executor": "True", "dag_id": "etl", "task_id": "load"},
            "annotations": {"podtier.io/tier": tier} if tier else {},
        },
        "spec": {
            "nodeName": "nowhere",  # bound: no scheduler needed, and resize wants a bound pod
            "containers": [
                {
                    "name": "base",
                    "image": "apache/airflow:3.3.2",
                    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": limits},
                }
            ],
        },
    }


def refusal(plane: ControlPlane, body: dict[str, Any], dry_run: bool = False) -> str | None:
    """The API server's message when it refuses to create the pod; None when created."""
    try:
        plane.core.create_namespaced_pod(NS, body, dry_run="All" if dry_run else None)
    except ApiException as err:
        message: str = json.loads(err.body)["message"]
        return message
    return None


def resize_refusal(plane: ControlPlane, name: str, limits: dict[str, str]) -> str | None:
    body = {"spec": {"containers": [{"name": "base", "resources": {"limits": limits}}]}}
    try:
        plane.core.patch_namespaced_pod_resize(name, NS, body)
    except ApiException as err:
        message: str = json.loads(err.body)["message"]
        return message
    return None


def test_an_oversized_pod_is_denied_while_podtier_is_down(
    cp: ControlPlane, installed: tuple[ControlPlane, str]
) -> None:
    said = refusal(cp, pod("big", {"cpu": "2", "memory": "64Gi"}))
    assert said is not None
    assert f"ValidatingAdmissionPolicy '{installed[1]}'" in said
    assert "container base: memory limit 64Gi is above tier medium's limit 4Gi" in said

    untiered = refusal(cp, pod("untiered", {"cpu": "32", "memory": "2Gi"}, tier=None))
    assert "container base: cpu limit 32 is above the policy ceiling 16" in str(untiered)

    assert refusal(cp, pod("fits", {"cpu": "2", "memory": "4Gi"})) is None


def test_an_oversized_resize_is_denied_and_a_permitted_one_stored(cp: ControlPlane) -> None:
    assert refusal(cp, pod("running", {"cpu": "2", "memory": "3Gi"})) is None
    # the API server reports the first validation that fails: the ceilings come first
    said = resize_refusal(cp, "running", {"cpu": "32", "memory": "64Gi"})
    assert "container base: cpu limit 32 is above the policy ceiling 16" in str(said)
    said = resize_refusal(cp, "running", {"cpu": "2", "memory": "8Gi"})
    assert "container base: memory limit 8Gi is above tier medium's limit 4Gi" in str(said)
    assert resize_refusal(cp, "running", {"cpu": "2", "memory": "4Gi"}) is None
    limits = cp.core.read_namespaced_pod("running", NS).spec.containers[0].resources.limits
    assert limits == {"cpu": "2", "memory": "4Gi"}


def test_rewriting_the_tier_ahead_of_a_resize_is_denied(cp: ControlPlane) -> None:
    assert refusal(cp, pod("forger", {"cpu": "2", "memory": "4Gi"})) is None
    with pytest.raises(ApiException) as refused:
        cp.core.patch_namespaced_pod(
            "forger", NS, {"metadata": {"annotations": {"podtier.io/tier": "heavy"}}}
        )
    assert "podtier's annotations are written at creation and may not change" in str(
        json.loads(refused.value.body)["message"]
    )
    # a label is not podtier's: it changes
    cp.core.patch_namespaced_pod("forger", NS, {"metadata": {"labels": {"done": "True"}}})


def test_a_policy_reload_reaches_the_parameters_and_the_api_server(
    cp: ControlPlane, installed: tuple[ControlPlane, str], tmp_path: Path
) -> None:
    name = installed[1]
    made = run_podtier("certs", "generate", "--out", str(tmp_path), "--ip", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    policy_file = policy_dir / "default.yaml"
    policy_file.write_text(DEFAULT_POLICY.read_text())
    server = Server(
        tmp_path,
        [
            "--cluster",
            "auto",
            "--kubeconfig",
            str(cp.kubeconfig),
            "--policy",
            str(policy_dir),
            "--admission-policy-params",
            name,
        ],
        env={"POD_NAME": "podtier-0", "POD_NAMESPACE": "podtier"},
    )
    try:
        server.wait_ready()
        five = pod("five", {"cpu": "2", "memory": "5Gi"})
        assert "above tier medium's limit 4Gi" in str(refusal(cp, five, dry_run=True))

        doc = yaml.safe_load(policy_file.read_text())
        doc["spec"]["tiers"]["medium"]["limits"]["memory"] = "6Gi"
        policy_file.write_text(yaml.safe_dump(doc, sort_keys=False))

        def parameter() -> str:
            data = cp.core.read_namespaced_config_map(name, "podtier").data or {}
            return str(data.get("tier.medium.memory"))

        wait("the reloaded policy in the parameters", lambda: parameter() == "6Gi")
        wait("the API server judging by them", lambda: refusal(cp, five, dry_run=True) is None)
        assert "above tier medium's limit 6Gi" in str(
            refusal(cp, pod("seven", {"cpu": "2", "memory": "7Gi"}), dry_run=True)
        )
    finally:
        server.process.terminate()
        server.process.wait(10)
        # the next test module's plane is its own; put the shipped numbers back for this one
        data = cp.core.read_namespaced_config_map(name, "podtier")
        data.data["tier.medium.memory"] = "4Gi"
        cp.core.replace_namespaced_config_map(name, "podtier", data)
