"""The chart installed and upgraded the way Helm does it, without a `helm` binary: Helm's own
engine renders (helm-python-sdk, as tests/chart does), the CRDs in `crds/` are created first,
then the rendered objects in Helm's install order; an upgrade re-renders and applies
server-side (fields podtier wrote itself, such as the webhooks' caBundle, stay)."""

from __future__ import annotations

import base64
import time
from typing import Any

import kubernetes
import yaml

from tests.chart.chart_rendering import CHART_DIR, NAMESPACE, RELEASE, render
from tests.realnode import Cluster

AIRFLOW_NS = "airflow"
# Helm's kind order for install (pkg/release/util/kind_sorter.go, InstallOrder); other kinds last.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
]  # fmt: skip
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def in_install_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {kind: i for i, kind in enumerate(INSTALL_ORDER)}
    return sorted(objects, key=lambda o: (rank.get(o["kind"], len(rank)), o["kind"]))


def manifest(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def ensure_namespace(core: kubernetes.client.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace({"metadata": {"name": name}})
    except kubernetes.client.ApiException as err:
        if err.status != 409:
            raise


CLUSTER_SCOPED = {
    "Namespace", "PriorityClass", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
    "StorageClass", "PersistentVolume", "IngressClass", "APIService", *WEBHOOK_KINDS,
}  # fmt: skip


def rendered(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's objects in Helm's install order, namespaced ones in the release namespace
    (as `helm install -n podtier` puts them)."""
    objects = in_install_order(render(values, name=RELEASE, namespace=NAMESPACE))
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"].setdefault("namespace", NAMESPACE)
    return objects


def helm_install(cluster: Cluster, values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm install podtier charts/podtier -n podtier --create-namespace` with `values`;
    returns the rendered objects. A release left by an earlier session is uninstalled first."""
    objects = rendered(values)
    cluster.kubectl("delete", "--ignore-not-found", "--wait", "-f", "-", stdin=manifest(objects))
    with cluster.api() as api:
        for namespace in (NAMESPACE, AIRFLOW_NS):
            ensure_namespace(kubernetes.client.CoreV1Api(api), namespace)
    for crd in sorted((CHART_DIR / "crds").glob("*.yaml")):  # Helm: created unless present
        name = yaml.safe_load(crd.read_text())["metadata"]["name"]
        if not cluster.kubectl("get", "crd", name, "--ignore-not-found", "-o", "name"):
            cluster.kubectl("create", "-f", str(crd))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    cluster.kubectl("create", "-f", "-", stdin=manifest(objects))
    return objects


def helm_upgrade(cluster: Cluster, values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm upgrade` with new values: the chart re-rendered, applied over what runs."""
    objects = rendered(values)
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=helm", "-f", "-",
        stdin=manifest(objects),
    )  # fmt: skip
    return objects


def deployment_name(objects: list[dict[str, Any]]) -> str:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return str(deployment["metadata"]["name"])


def wait_rolled_out(cluster: Cluster, deployment: str, timeout: int = 240) -> None:
    cluster.kubectl(
        "rollout", "status", f"deployment/{deployment}", "-n", NAMESPACE, f"--timeout={timeout}s",
        timeout=timeout + 10,
    )  # fmt: skip


def ca_bundles(api: kubernetes.client.ApiClient, objects: list[dict[str, Any]]) -> list[bytes]:
    """The caBundle of every webhook of the chart's webhook configurations, decoded."""
    admission = kubernetes.client.AdmissionregistrationV1Api(api)
    found = []
    for obj in objects:
        if obj["kind"] not in WEBHOOK_KINDS:
            continue
        name = obj["metadata"]["name"]
        if obj["kind"] == WEBHOOK_KINDS[0]:
            live = admission.read_mutating_webhook_configuration(name)
        else:
            live = admission.read_validating_webhook_configuration(name)
        for webhook in live.webhooks:
            bundle = webhook.client_config.ca_bundle
            found.append(base64.b64decode(bundle) if bundle else b"")
    return found


def wait_ca_bundles(
    api: kubernetes.client.ApiClient, objects: list[dict[str, Any]], timeout: float = 120
) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while True:
        bundles = ca_bundles(api, objects)
        if bundles and all(b"BEGIN CERTIFICATE" in b for b in bundles):
            return bundles
        if time.monotonic() > deadline:
            raise AssertionError(f"caBundle not injected within {timeout:g} s: {bundles}")
        time.sleep(0.5)


def airflow_pod(
    name: str,
    image: str,
    command: list[str],
    *,
    task_id: str = "e2e",
    try_number: int = 1,
    tier: str | None = None,
    dag_id: str = "e2e_pods",
    run_id: str = "manual__2026-01-01T00:00:00+00:00",
) -> dict[str, Any]:
    """A pod shaped like one the KubernetesExecutor creates: its labels and annotations."""
    labels = {
        "kubernetes_executor": "True",
        "airflow-worker": "e2e",
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": "manual__2026-01-01T0000000000-abcdef123",
        "try_number": str(try_number),
    }
    if tier is not None:
        labels["tier"] = tier
    annotations = {"dag_id": dag_id, "task_id": task_id, "run_id": run_id}
    annotations["try_number"] = str(try_number)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "base",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                }
            ],
        },
    }


def wait_pod_done(
    core: kubernetes.client.CoreV1Api, name: str, namespace: str = AIRFLOW_NS, timeout: float = 180
) -> kubernetes.client.V1Pod:
    """The pod once it Succeeded or Failed."""
    deadline = time.monotonic() + timeout
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status.phase in ("Succeeded", "Failed"):
            return pod
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} still {pod.status.phase} after {timeout:g} s")
        time.sleep(0.5)


def base_terminated(pod: kubernetes.client.V1Pod) -> kubernetes.client.V1ContainerStateTerminated:
    (status,) = [s for s in pod.status.container_statuses if s.name == "base"]
    assert status.state.terminated is not None, status
    return status.state.terminated
