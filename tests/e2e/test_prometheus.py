"""The `prometheus` fixture (tests/e2e/conftest.py; tests/realnode.py `cadvisor_prometheus`):
Debian's prometheus on the host scraping both kubelets' cAdvisor has the working set of a
running pod's `base` container, under the labels podtier's learning queries by."""

from __future__ import annotations

import time

import kubernetes

from tests import realnode
from tests.e2e import install


def test_prometheus_has_the_working_set_of_a_running_pods_base_container(
    prometheus: realnode.Prometheus, api: kubernetes.client.ApiClient, python_image: str
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    name = "cadvisor-probe"
    install.ensure_namespace(core, install.AIRFLOW_NS)
    allocate = "data = b'x' * (64 * 2**20); import time; time.sleep(300)"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "base",
                    "image": python_image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", allocate],
                }
            ],
        },
    }
    core.create_namespaced_pod(install.AIRFLOW_NS, pod)
    try:
        query = (
            f'container_memory_working_set_bytes{{namespace="{install.AIRFLOW_NS}",'
            f'pod="{name}",container="base"}}'
        )
        deadline = time.monotonic() + 90
        while not (found := prometheus.query(query)) or float(found[0]["value"][1]) < 64 * 2**20:
            assert time.monotonic() < deadline, f"{query}: {found}"
            time.sleep(1)
        (series,) = found
        assert series["metric"]["node"] in ("worker", "compute")
        assert series["metric"]["image"] == python_image
    finally:
        core.delete_namespaced_pod(name, install.AIRFLOW_NS, grace_period_seconds=0)
