"""Real Airflow on real nodes: the scheduler's KubernetesExecutor creates the worker pods
through podtier, the pods run the tasks (the worker image: Python + Airflow + the provider) and
report to the api-server's execution API on the host. The memory-hungry task is killed by the
kernel at tier light's limit, Airflow retries it, podtier gives try 2 more memory, it succeeds.
The task whose pod needs the memory from its start is killed before the task runs: the provider
relaunches the pod for the same try (pod_launch_failure_retries) and podtier raises that."""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.utils import parse_quantity

from tests import realnode
from tests.e2e import install
from tests.e2e.airflow_host import HERE, Airflow
from tests.e2e.conftest import E2E_TIMINGS, Release

DAG = "podtier_e2e"
GIB = 2**30


@pytest.fixture(scope="package")
def worker_image(cluster: realnode.Cluster, python_image: str) -> str:
    tag = realnode.content_tag("localhost/podtier-airflow-worker", [HERE])
    E2E_TIMINGS["airflow worker image build"] = cluster.build(tag, HERE)
    return tag


def base(pod: kubernetes.client.V1Pod) -> kubernetes.client.V1Container:
    return next(c for c in pod.spec.containers if c.name == "base")


def describe(pods: list[kubernetes.client.V1Pod]) -> str:
    lines = []
    for pod in pods:
        labels, notes = pod.metadata.labels, pod.metadata.annotations or {}
        statuses = [
            (s.state.terminated.reason, s.state.terminated.exit_code)
            if s.state.terminated
            else s.state
            for s in pod.status.container_statuses or []
        ]
        lines.append(
            f"{labels.get('task_id')} try {labels.get('try_number')}: {pod.status.phase} on "
            f"{pod.spec.node_name}, tier {notes.get('podtier.io/tier')}, limits "
            f"{base(pod).resources.limits}, {statuses}, {notes.get('podtier.io/reason')}"
        )
    return "\n".join(lines)


def test_airflow_retries_the_oom_killed_task_with_the_memory_podtier_raised(
    cluster: realnode.Cluster,
    release: Release,
    api: kubernetes.client.ApiClient,
    worker_image: str,
    airflow_python: Future[Path],
    e2e_work: Path,
) -> None:
    python = airflow_python.result(timeout=1500)
    airflow = Airflow(
        python=python,
        home=e2e_work / "airflow",
        kubeconfig=cluster.kubeconfig,
        namespace=install.AIRFLOW_NS,
        worker_image=worker_image,
        host_ip=cluster.host_ip,
    )
    core = kubernetes.client.CoreV1Api(api)
    try:
        started = time.monotonic()
        airflow.start()
        airflow.wait_api()
        airflow.wait_dag(DAG)
        E2E_TIMINGS["airflow: db migrate to api-server up and DAG parsed"] = (
            time.monotonic() - started
        )
        run_id = f"e2e_{int(time.time())}"
        started = time.monotonic()
        airflow.trigger(DAG, run_id)
        state = airflow.wait_run(DAG, run_id, timeout=600)
        E2E_TIMINGS["airflow DAG: trigger to DagRun " + state] = time.monotonic() - started
        tries = airflow.tries(DAG, run_id)
        selector = f"dag_id={DAG}"
        pods = core.list_namespaced_pod(install.AIRFLOW_NS, label_selector=selector).items
        pods = [
            install.wait_pod_done(core, p.metadata.name, timeout=60)
            for p in pods
            if p.metadata.annotations.get("run_id") == run_id
        ]
        pods.sort(key=lambda p: p.metadata.creation_timestamp)
        seen = f"tries {tries}\npods:\n{describe(pods)}\nscheduler:\n{airflow.log('scheduler')}"
        assert state == "success", seen
    finally:
        airflow.stop()

    assert tries["light"][-1] == (1, "success"), seen
    assert tries["heavy"][-1] == (1, "success"), seen
    assert [n for n, _ in tries["hungry"]] == [1, 2] and tries["hungry"][-1] == (2, "success"), seen

    def pods_of(task: str) -> list[kubernetes.client.V1Pod]:
        return [p for p in pods if p.metadata.labels["task_id"] == task]

    (light,) = pods_of("light")
    assert light.metadata.annotations["podtier.io/tier"] == "light", seen
    (heavy,) = pods_of("heavy")
    assert heavy.metadata.annotations["podtier.io/tier"] == "heavy", seen
    assert heavy.spec.node_name == "compute", seen  # only podtier's compute placement gets there
    check_relaunch(tries, pods, seen)
    first, retry = pods_of("hungry")
    assert parse_quantity(base(first).resources.limits["memory"]) == GIB, seen
    killed = install.base_terminated(first)
    assert (killed.reason, killed.exit_code) == ("OOMKilled", 137), seen
    assert retry.metadata.labels["try_number"] == "2", seen
    assert parse_quantity(base(retry).resources.limits["memory"]) > GIB, seen
    assert "OOMKilled" in retry.metadata.annotations["podtier.io/reason"], seen
    assert retry.status.phase == "Succeeded", seen


def check_relaunch(tries: dict[str, list[tuple[int, str]]], pods: list[Any], seen: str) -> None:
    """`hungry_start`, killed before its task started: relaunched for the same try, raised."""
    assert tries["hungry_start"] == [(1, "success")], seen
    first, relaunch = [p for p in pods if p.metadata.labels["task_id"] == "hungry_start"]
    assert [first.metadata.labels["try_number"], relaunch.metadata.labels["try_number"]] == [
        "1",
        "1",
    ], seen
    killed = install.base_terminated(first)
    assert (killed.reason, killed.exit_code) == ("OOMKilled", 137), seen
    assert parse_quantity(base(first).resources.limits["memory"]) == GIB, seen
    assert parse_quantity(base(relaunch).resources.limits["memory"]) > GIB, seen
    assert "OOMKilled" in relaunch.metadata.annotations["podtier.io/reason"], seen
    assert relaunch.status.phase == "Succeeded", seen
