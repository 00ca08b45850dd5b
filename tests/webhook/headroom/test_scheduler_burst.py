"""Headroom across a burst of heavy pods, against a real kube-apiserver and kube-scheduler.

`podtier serve --cluster auto --kubeconfig FILE` runs as the mutating and validating webhook of
the control plane from `tests/controlplane.py`, and the real scheduler binds what it admits. In
`pin` placement mode the scheduler cannot undo podtier's choice of pool: a pod pinned to a full
pool waits (Unschedulable) even when another pool it may use has room.

The cluster: 4 worker nodes (16 cpu, 64Gi, taint dedicated=worker:NoSchedule) and 2
compute-optimized nodes (5 cpu, 20Gi, taint workload=heavy:NoSchedule). A heavy pod requests
2 cpu and 4Gi, so each compute node takes 2 heavy pods: exactly 4 belong in compute, and every
other heavy pod of a burst belongs in worker.

The scheduler may bind a pod to another node of its pool than the one podtier held it on;
podtier's holds follow (`webhook/headroom/state.py`), so its picture never shows room the
cluster does not have (`test_scheduler_moves.py` has the same events without a cluster).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.conftest import Server, run_podtier
from tests.controlplane import ControlPlane, PodOutcome, control_plane  # noqa: F401

NS = "airflow"
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}
COMPUTE_TAINT = {"key": "workload", "value": "heavy", "effect": "NoSchedule"}
COMPUTE_TOLERATION = {"key": "workload", "operator": "Equal", "value": "heavy"}
WORKERS = [f"worker-{i}" for i in range(4)]
COMPUTES = [f"compute-{i}" for i in range(2)]
BURST = 24
IN_FLIGHT = 12  # pod creations at a time
GATE = "podtier.test/hold"


def expect_pool_not_overbooked(summary: dict[str, int], expected: dict[str, int], why: str) -> None:
    assert summary == expected, f"{json.dumps(summary)} != {json.dumps(expected)}\n{why}"


class Cluster:
    def __init__(self, plane: ControlPlane, podtier: Server) -> None:
        self.plane = plane
        self.podtier = podtier

    def podtier_free(self, pool: str, resource: str) -> float:
        """What podtier's headroom has free in `pool`, from its /metrics."""
        prefix = f'podtier_headroom_free{{pool="{pool}",resource="{resource}"}} '
        for line in self.podtier.client.get("/metrics").text.splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix) :])
        raise AssertionError(f"no {prefix.strip()} in podtier's /metrics")

    def wait_podtier_free(self, pool: str, resource: str, value: float) -> None:
        """Wait until podtier's picture shows `value` free (it has seen the events before)."""
        deadline = time.monotonic() + 30
        while (free := self.podtier_free(pool, resource)) != value:
            if time.monotonic() > deadline:
                raise AssertionError(f"podtier shows {free} {resource} free in {pool}, not {value}")
            time.sleep(0.05)


@pytest.fixture
def cluster(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Cluster]:  # noqa: F811
    plane = control_plane
    plane.reset()
    plane.ensure_namespace(NS)
    for name in WORKERS:
        plane.add_node(name, {"node-type": "worker"}, [WORKER_TAINT], cpu="16", memory="64Gi")
    for name in COMPUTES:
        plane.add_node(
            name, {"node-type": "compute-optimized"}, [COMPUTE_TAINT], cpu="5", memory="20Gi"
        )

    cert_dir = tmp_path / "podtier-certs"
    made = run_podtier("certs", "generate", "--out", str(cert_dir), "--ip", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    podtier = Server(cert_dir, ["--cluster", "auto", "--kubeconfig", str(plane.kubeconfig)])
    try:
        podtier.wait_ready()
        wait_podtier_ready(podtier)
        plane.register_webhooks(podtier.url, (cert_dir / "ca.crt").read_bytes(), [NS])
        plane.wait_webhooks_active(NS)
        yield Cluster(plane, podtier)
    finally:
        podtier.stop()
        plane.reset()


def wait_podtier_ready(podtier: Server, timeout: float = 30.0) -> None:
    """/readyz: certificates, policy, and the first list of nodes and pods (headroom synced)."""
    deadline = time.monotonic() + timeout
    while podtier.client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"podtier not ready: {podtier.client.get('/readyz').text}")
        time.sleep(0.1)


def heavy_pod(name: str, gated: bool = False) -> dict[str, Any]:
    """A KubernetesExecutor worker pod as Airflow makes it, asking for tier heavy; `gated`:
    held back from the scheduler by a scheduling gate until `ungate`."""
    task = f"task_{name.rsplit('-', 1)[-1]}"
    identity = {"dag_id": "etl_burst", "task_id": task, "try_number": "1"}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "base",
                "image": "apache/airflow:2.9.1",
                "args": ["airflow", "tasks", "run", "etl_burst", task, "manual"],
            }
        ],
    }
    if gated:
        spec["schedulingGates"] = [{"name": GATE}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes_executor": "True",
                "podtier.io/tier": "heavy",
                "airflow-worker": "1",
                **identity,
                "run_id": "manual__2024-05-01T0000000000-a1b2c3d4e",
            },
            "annotations": {**identity, "run_id": "manual__2024-05-01T00:00:00+00:00"},
        },
        "spec": spec,
    }


def ungate(plane: ControlPlane, names: Sequence[str]) -> None:
    for name in names:
        plane.core.patch_namespaced_pod(
            name, NS, [{"op": "remove", "path": "/spec/schedulingGates"}]
        )


def create_burst(plane: ControlPlane, names: Sequence[str]) -> None:
    """Create the pods with `IN_FLIGHT` creations going on at any time."""
    with plane.api_client(pool_size=IN_FLIGHT) as api, ThreadPoolExecutor(IN_FLIGHT) as threads:
        core = kubernetes.client.CoreV1Api(api)
        list(threads.map(lambda name: core.create_namespaced_pod(NS, heavy_pod(name)), names))


def summarize(outcomes: dict[str, PodOutcome]) -> dict[str, int]:
    pinned = Counter(o.annotations.get("podtier.io/pool") for o in outcomes.values())
    return {
        "pinned to compute": pinned["compute"],
        "pinned to worker": pinned["worker"],
        "bound": sum(1 for o in outcomes.values() if o.node),
        "unschedulable": sum(1 for o in outcomes.values() if o.unschedulable),
    }


def describe(outcomes: dict[str, PodOutcome]) -> str:
    """Per pod: the pool podtier pinned, the node it found room on, where the pod is now."""
    lines = []
    for name, outcome in sorted(outcomes.items()):
        reason = outcome.annotations.get("podtier.io/reason", "").split("; ", 1)[-1]
        where = outcome.node or f"UNSCHEDULABLE: {outcome.unschedulable}"
        pool = outcome.annotations.get("podtier.io/pool")
        lines.append(f"  {name}: pool {pool} ({reason}) -> {where}")
    return "\n".join(lines)


def test_one_heavy_pod_is_sized_pinned_to_compute_and_bound_there(cluster: Cluster) -> None:
    plane = cluster.plane
    plane.core.create_namespaced_pod(NS, heavy_pod("heavy-single"))
    outcome = plane.wait_settled(NS, ["heavy-single"])["heavy-single"]
    assert outcome.annotations["podtier.io/tier"] == "heavy"
    assert outcome.annotations["podtier.io/pool"] == "compute"
    assert outcome.node_selector == {"node-type": "compute-optimized"}
    assert outcome.node in COMPUTES, describe({"heavy-single": outcome})
    base = plane.core.read_namespaced_pod("heavy-single", NS).spec.containers[0]
    assert base.resources.requests == {"cpu": "2", "memory": "4Gi"}


def test_a_burst_of_heavy_pods_fills_compute_exactly_and_the_rest_go_to_worker(
    cluster: Cluster,
) -> None:
    plane = cluster.plane
    names = [f"heavy-{i:02d}" for i in range(BURST)]
    create_burst(plane, names)
    outcomes = plane.wait_settled(NS, names, timeout=120)

    expected = {"pinned to compute": 4, "pinned to worker": 20, "bound": 24, "unschedulable": 0}
    expect_pool_not_overbooked(summarize(outcomes), expected, describe(outcomes))


def test_a_heavy_pod_bound_to_another_compute_node_than_podtier_held_it_on(
    cluster: Cluster,
) -> None:
    """The burst's race, with the window held open: four heavy pods pinned to compute wait
    behind a scheduling gate; the first is let through and the scheduler binds it to the
    other compute node than podtier held it on; then a fifth heavy pod arrives."""
    plane = cluster.plane
    # Something else (say a DaemonSet pod) uses 12Gi of compute-0's memory. Both compute nodes
    # still take 2 heavy pods each, but podtier, which looks at cpu first, holds the first heavy
    # pod on compute-0 (as much cpu free as compute-1, first by name), while the scheduler,
    # which weighs cpu and memory, prefers compute-1 for it.
    hog = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "memory-hog"},
        "spec": {
            "nodeName": "compute-0",
            "tolerations": [COMPUTE_TOLERATION],
            "containers": [
                {"name": "hog", "image": "hog", "resources": {"requests": {"memory": "12Gi"}}}
            ],
        },
    }
    plane.core.create_namespaced_pod(NS, hog)
    cluster.wait_podtier_free("compute", "memory", 28 * 2**30)

    held = ["heavy-a", "heavy-b", "heavy-c", "heavy-d"]
    for name in held:
        plane.core.create_namespaced_pod(NS, heavy_pod(name, gated=True))
    first = plane.outcomes(NS, ["heavy-a"])["heavy-a"]
    assert first.annotations["podtier.io/pool"] == "compute"
    assert "node compute-0 has room" in first.annotations["podtier.io/reason"]

    ungate(plane, ["heavy-a"])
    assert plane.wait_bound(NS, ["heavy-a"]) == {"heavy-a": "compute-1"}
    # A pod bound after heavy-a's binding, seen by podtier: podtier has seen the binding too
    # (a watch delivers events in order).
    marker = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "marker"},
        "spec": {
            "nodeName": "worker-3",
            "containers": [{"name": "m", "image": "m", "resources": {"requests": {"cpu": "1"}}}],
        },
    }
    plane.core.create_namespaced_pod(NS, marker)
    cluster.wait_podtier_free("worker", "cpu", 63)

    plane.core.create_namespaced_pod(NS, heavy_pod("heavy-e"))
    ungate(plane, held[1:])
    names = [*held, "heavy-e"]
    outcomes = plane.wait_settled(NS, names)

    expected = {"pinned to compute": 4, "pinned to worker": 1, "bound": 5, "unschedulable": 0}
    expect_pool_not_overbooked(summarize(outcomes), expected, describe(outcomes))
