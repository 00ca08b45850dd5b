"""The control-plane harness, used as a test would use it: its nodes are Ready and schedulable,
the real kube-scheduler binds pods to them (or says why not), pod status written through it is
what the API shows, and webhooks registered through it are called (Fail when podtier is down)."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from tests.conftest import free_port
from tests.controlplane import (  # noqa: F401
    NOT_READY_TAINT,
    ControlPlane,
    versioned_control_plane,
)

NS = "harness"
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}
WORKER_TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "worker"}


@pytest.fixture
def cp(versioned_control_plane: ControlPlane) -> ControlPlane:  # noqa: F811
    """Every test here runs on Kubernetes 1.28 and 1.34."""
    versioned_control_plane.reset()
    versioned_control_plane.ensure_namespace(NS)
    return versioned_control_plane


def pod(name: str, cpu: str | None = None, **spec: Any) -> dict[str, Any]:
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "base", "image": "busybox", "resources": resources}],
            **spec,
        },
    }


def test_a_node_is_ready_untainted_and_the_scheduler_binds_a_plain_pod_to_it(
    cp: ControlPlane,
) -> None:
    cp.add_node("n1", labels={"node-type": "worker"}, cpu="8", memory="32Gi")

    with cp.api_client() as api:  # a separate client, from the kubeconfig file
        node = kubernetes.client.CoreV1Api(api).read_node("n1")
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert [c.status for c in ready] == ["True"]
    assert not node.spec.taints  # the API server's not-ready taint was lifted
    assert node.status.allocatable == {"cpu": "8", "memory": "32Gi", "pods": "110"}

    cp.core.create_namespaced_pod(NS, pod("plain"))
    assert cp.wait_bound(NS, ["plain"]) == {"plain": "n1"}


def test_a_node_keeps_its_own_taints_and_only_tolerating_pods_land_on_it(
    cp: ControlPlane,
) -> None:
    node = cp.add_node("w1", labels={"node-type": "worker"}, taints=[WORKER_TAINT])
    assert [(t["key"], t["effect"]) for t in node["spec"]["taints"]] == [
        ("dedicated", "NoSchedule")
    ]
    cp.core.create_namespaced_pod(NS, pod("tolerates", tolerations=[WORKER_TOLERATION]))
    cp.core.create_namespaced_pod(NS, pod("does-not"))
    outcomes = cp.wait_settled(NS, ["tolerates", "does-not"])
    assert outcomes["tolerates"].node == "w1"
    assert outcomes["does-not"].node is None
    assert "untolerated taint" in str(outcomes["does-not"].unschedulable)


def test_not_ready_and_cordoned_nodes_get_no_pods(cp: ControlPlane) -> None:
    not_ready = cp.add_node("sick", ready=False)
    assert NOT_READY_TAINT in [t["key"] for t in not_ready["spec"]["taints"]]
    cp.add_node("cordoned", unschedulable=True)
    cp.core.create_namespaced_pod(NS, pod("nowhere"))
    outcome = cp.wait_settled(NS, ["nowhere"])["nowhere"]
    assert outcome.node is None
    assert "0/2 nodes are available" in str(outcome.unschedulable)

    cp.add_node("healthy")
    assert cp.wait_bound(NS, ["nowhere"]) == {"nowhere": "healthy"}


def test_a_pod_that_fits_no_node_is_left_pending_and_unschedulable(cp: ControlPlane) -> None:
    cp.add_node("small-1", cpu="1")
    cp.add_node("small-2", cpu="1")
    cp.core.create_namespaced_pod(NS, pod("too-big", cpu="2"))

    outcome = cp.wait_settled(NS, ["too-big"])["too-big"]
    assert outcome.node is None
    assert "Insufficient cpu" in str(outcome.unschedulable)
    status = cp.core.read_namespaced_pod("too-big", NS).status
    assert status.phase == "Pending"
    scheduled = [c for c in status.conditions if c.type == "PodScheduled"]
    assert [(c.status, c.reason) for c in scheduled] == [("False", "Unschedulable")]


def test_extra_resources_are_allocatable_and_scheduled_on(cp: ControlPlane) -> None:
    cp.add_node("gpu-1", extra={"nvidia.com/gpu": "1"})
    gpu_pod = pod("gpu")
    gpu_pod["spec"]["containers"][0]["resources"] = {
        "requests": {"nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    cp.core.create_namespaced_pod(NS, gpu_pod)
    assert cp.wait_bound(NS, ["gpu"]) == {"gpu": "gpu-1"}


def test_pod_status_written_as_a_kubelet_would_is_what_the_api_shows(cp: ControlPlane) -> None:
    cp.add_node("n1")
    cp.core.create_namespaced_pod(NS, pod("task"))
    cp.wait_bound(NS, ["task"])

    cp.set_pod_status(NS, "task", "Running")
    with cp.api_client() as api:
        running = kubernetes.client.CoreV1Api(api).read_namespaced_pod("task", NS).status
    assert running.phase == "Running"
    assert running.container_statuses[0].state.running is not None

    cp.set_pod_status(NS, "task", "Failed", exit_code=137, reason="OOMKilled")
    with cp.api_client() as api:
        failed = kubernetes.client.CoreV1Api(api).read_namespaced_pod("task", NS).status
    assert failed.phase == "Failed"
    (container,) = failed.container_statuses
    assert container.name == "base"
    assert (container.state.terminated.exit_code, container.state.terminated.reason) == (
        137,
        "OOMKilled",
    )


def test_registered_webhooks_fail_airflow_pods_while_nothing_answers(cp: ControlPlane) -> None:
    closed = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    cp.register_webhooks(closed, cp.ca_pem, [NS])
    airflow = pod("airflow-task")
    airflow["metadata"]["labels"] = {"kubernetes_executor": "True"}

    with pytest.raises(ApiException) as refused:
        cp.core.create_namespaced_pod(NS, airflow)
    assert "mutate.podtier.io" in str(refused.value.body)
    # the chart's matchConditions: a pod that is not Airflow's never reaches the webhook
    cp.core.create_namespaced_pod(NS, pod("not-airflow"))


def test_reset_leaves_no_pods_nodes_or_webhooks(cp: ControlPlane) -> None:
    cp.add_node("n1")
    cp.core.create_namespaced_pod(NS, pod("bound"))
    cp.wait_bound(NS, ["bound"])
    cp.register_webhooks("https://127.0.0.1:1", cp.ca_pem, [NS])

    cp.reset()

    assert cp.core.list_pod_for_all_namespaces().items == []
    assert cp.core.list_node().items == []
    assert cp.admission.list_mutating_webhook_configuration().items == []
    assert cp.admission.list_validating_webhook_configuration().items == []
    cp.core.create_namespaced_pod(NS, pod("after-reset"))  # no webhook in the way
