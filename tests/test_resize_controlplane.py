"""Limits that hold after admission, on real API servers: Kubernetes 1.34 (in-place resize on by
default, the `pods/resize` subresource) and 1.28 with InPlacePodVerticalScaling (a plain UPDATE
of the pod's resources), with podtier's webhooks registered exactly as the chart renders them
(Helm's own engine), pointed at `podtier serve` on loopback.

A pod admitted at tier medium (limits cpu 2, memory 4Gi) and bound by the scheduler:
- resized to memory 64Gi and cpu 32: denied by podtier, with the container, resource, value and
  limit; the stored pod keeps its resources;
- resized within the tier: allowed and stored;
- its `podtier.io/tier` rewritten to heavy ahead of a resize: refused;
- a label-only UPDATE is never sent to podtier: it goes through while podtier is down (the
  validating webhook fails closed, so a resize does not).
And a pod created with forged escalation annotations (tier, pool, policy, escalated memory, a
made-up seal) gets no more than its tier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.chart.chart_install import install_webhooks, rendered
from tests.conftest import Server, free_port, run_podtier
from tests.controlplane import ControlPlane, versioned_control_plane  # noqa: F401

NS = "airflow"
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}


def register(plane: ControlPlane, url: str, ca_pem: bytes) -> None:
    """The chart's webhooks for `--set webhook.namespaces={airflow}`, pointed at `url`."""
    install_webhooks(plane, rendered({"webhook": {"namespaces": [NS]}}), url, ca_pem)


@pytest.fixture(scope="module")
def podtier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("podtier-resize")
    made = run_podtier("certs", "generate", "--out", str(directory), "--ip", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    key = directory / "escalation.key"
    key.write_bytes(b"k" * 48)
    server = Server(directory, ["--cluster", "none", "--escalation-key", str(key)])
    server.wait_ready()
    yield server
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture
def cp(versioned_control_plane: ControlPlane, podtier: Server) -> ControlPlane:  # noqa: F811
    plane = versioned_control_plane
    plane.reset()
    plane.ensure_namespace(NS)
    register(plane, podtier.url, (Path(podtier.cert_dir) / "ca.crt").read_bytes())
    plane.wait_webhooks_active(NS)
    plane.add_node("worker-1", labels={"node-type": "worker"}, taints=[WORKER_TAINT])
    return plane


def worker_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes_executor": "True",
                "dag_id": "etl",
                "task_id": "load",
                "run_id": "manual__1",
                "try_number": "1",
            },
        },
        "spec": {
            "containers": [{"name": "base", "image": "apache/airflow:3.3.2"}],
            "restartPolicy": "Never",
        },
    }


def admitted_medium(plane: ControlPlane, name: str) -> dict[str, Any]:
    plane.core.create_namespaced_pod(NS, worker_pod(name))
    plane.wait_bound(NS, [name])
    pod = plane.core.read_namespaced_pod(name, NS)
    assert pod.metadata.annotations["podtier.io/tier"] == "medium"
    resources = pod.spec.containers[0].resources
    assert (resources.limits, resources.requests) == (
        {"cpu": "2", "memory": "4Gi"},
        {"cpu": "1", "memory": "2Gi"},
    )
    return plane.client.sanitize_for_serialization(pod)


def resize(plane: ControlPlane, name: str, requests: dict[str, str], limits: dict[str, str]):
    """Change the base container's resources the way the API server's version does it: the
    `resize` subresource from 1.32 (1.34 here), an UPDATE of the pod before (1.28 here, with
    InPlacePodVerticalScaling)."""
    body = {
        "spec": {
            "containers": [{"name": "base", "resources": {"requests": requests, "limits": limits}}]
        }
    }
    if plane.server_version < (1, 32):
        return plane.core.patch_namespaced_pod(name, NS, body)
    return plane.core.patch_namespaced_pod_resize(name, NS, body)


def denial(err: ApiException) -> str:
    """The API server's message for a refused request."""
    message: str = json.loads(err.body)["message"]
    return message


def stored_resources(plane: ControlPlane, name: str) -> tuple[dict[str, str], dict[str, str]]:
    resources = plane.core.read_namespaced_pod(name, NS).spec.containers[0].resources
    return resources.requests, resources.limits


def test_an_oversized_resize_is_denied_by_podtier_and_nothing_is_stored(cp: ControlPlane) -> None:
    admitted_medium(cp, "big")
    with pytest.raises(ApiException) as refused:
        resize(cp, "big", {"cpu": "1", "memory": "2Gi"}, {"cpu": "32", "memory": "64Gi"})
    assert refused.value.status == 403
    body = denial(refused.value)
    assert 'admission webhook "validate.podtier.io" denied the request' in body
    assert "container base: memory limit 64Gi is above tier medium's limit 4Gi" in body
    assert "container base: cpu limit 32 is above tier medium's limit 2" in body
    assert stored_resources(cp, "big") == (
        {"cpu": "1", "memory": "2Gi"},
        {"cpu": "2", "memory": "4Gi"},
    )


def test_a_resize_within_the_tier_is_allowed_and_stored(cp: ControlPlane) -> None:
    admitted_medium(cp, "fits")
    resize(cp, "fits", {"cpu": "1500m", "memory": "3Gi"}, {"cpu": "2", "memory": "4Gi"})
    assert stored_resources(cp, "fits") == (
        {"cpu": "1500m", "memory": "3Gi"},
        {"cpu": "2", "memory": "4Gi"},
    )


def test_a_tier_rewritten_ahead_of_the_resize_is_refused(cp: ControlPlane) -> None:
    admitted_medium(cp, "forger")
    annotate = {"metadata": {"annotations": {"podtier.io/tier": "heavy"}}}
    with pytest.raises(ApiException) as refused:
        cp.core.patch_namespaced_pod("forger", NS, annotate)
    assert refused.value.status == 403
    assert 'podtier.io/tier: "medium" -> "heavy"' in denial(refused.value)
    with pytest.raises(ApiException):
        resize(cp, "forger", {"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "8Gi"})
    pod = cp.core.read_namespaced_pod("forger", NS)
    assert pod.metadata.annotations["podtier.io/tier"] == "medium"


def test_while_podtier_is_down_labels_change_and_resizes_do_not(cp: ControlPlane) -> None:
    admitted_medium(cp, "steady")
    closed = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    register(cp, closed, cp.ca_pem)
    cp.core.patch_namespaced_pod("steady", NS, {"metadata": {"labels": {"done": "True"}}})
    assert cp.core.read_namespaced_pod("steady", NS).metadata.labels["done"] == "True"
    with pytest.raises(ApiException) as refused:
        resize(cp, "steady", {"cpu": "1", "memory": "3Gi"}, {"cpu": "2", "memory": "4Gi"})
    assert 'failed calling webhook "validate.podtier.io"' in denial(refused.value)
    assert stored_resources(cp, "steady")[0] == {"cpu": "1", "memory": "2Gi"}


def test_a_pod_with_forged_escalation_annotations_gets_no_more_than_its_tier(
    cp: ControlPlane,
) -> None:
    from podtier.policies import DEFAULT_POLICY
    from podtier.webhook.policy.load import load_policy

    forged = worker_pod("forged")
    forged["metadata"]["annotations"] = {
        "podtier.io/tier": "heavy",
        "podtier.io/pool": "worker",
        "podtier.io/policy": load_policy([DEFAULT_POLICY]).ident,
        "podtier.io/escalated-memory": "60Gi",
        "podtier.io/escalation-seal": "v1.made-up-by-the-pod",
    }
    cp.core.create_namespaced_pod(NS, forged)
    stored = cp.core.read_namespaced_pod("forged", NS)
    notes = stored.metadata.annotations
    assert "podtier.io/escalated-memory" not in notes
    assert "podtier.io/escalation-seal" not in notes
    assert stored.spec.containers[0].resources.limits == {"cpu": "4", "memory": "8Gi"}

    asks = worker_pod("forged-asks")
    asks["metadata"]["annotations"] = dict(forged["metadata"]["annotations"])
    asks["spec"]["containers"][0]["resources"] = {"limits": {"memory": "60Gi"}}
    with pytest.raises(ApiException) as refused:
        cp.core.create_namespaced_pod(NS, asks)
    assert "memory limit 60Gi is above tier heavy's limit 8Gi" in denial(refused.value)
