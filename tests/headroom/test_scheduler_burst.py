"""Headroom across a burst of heavy pods, against a real kube-apiserver and kube-scheduler.

`podtier serve --cluster auto --kubeconfig FILE` runs as the mutating and validating webhook of
the control plane from `tests/controlplane.py`, and the real scheduler binds what it admits. In
`pin` placement mode the scheduler cannot undo podtier's choice of pool: a pod pinned to a full
pool waits (Unschedulable) even when another pool it may use has room.

The cluster: 4 worker nodes (16 cpu, 64Gi, taint dedicated=worker:NoSchedule) and 2
compute-optimized nodes (5 cpu, 20Gi, taint workload=heavy:NoSchedule). A heavy pod requests
2 cpu and 4Gi, so each compute node takes 2 heavy pods: exactly 4 belong in compute, and every
other heavy pod of a burst belongs in worker.

Known bug (ClusterState._upsert_pod in webhook/headroom/state.py): headroom counts each pod
podtier pinned and the scheduler has not bound yet on one particular node of its pool (its
reservation until the watch shows the pod, then its pending hold). The scheduler knows nothing
of those; when it binds a pod to another node of the pool than the one podtier counted it on,
the pod's requests move to that node, but the reservations and holds of the pods still unbound
there stay. That node is then overcommitted in podtier's picture (free capacity below zero,
which takes nothing away anywhere else) and the node the pod left shows room it does not have:
podtier pins one pod too many to compute, and the scheduler leaves it Unschedulable. The
phantom room lasts until those pods bind, so in a burst it is a race (`test_a_burst_...`); the
other xfail tests open the window on purpose.
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
from tests.headroom.builders import POOLS, node, pod, requests
from tests.headroom.feeds import from_events

NS = "airflow"
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}
COMPUTE_TAINT = {"key": "workload", "value": "heavy", "effect": "NoSchedule"}
COMPUTE_TOLERATION = {"key": "workload", "operator": "Equal", "value": "heavy"}
WORKERS = [f"worker-{i}" for i in range(4)]
COMPUTES = [f"compute-{i}" for i in range(2)]
BURST = 24
IN_FLIGHT = 12  # pod creations at a time
GATE = "podtier.test/hold"

KNOWN_BUG = (
    "headroom counts each unbound pinned pod on one node; when the scheduler binds one to "
    "another node of the pool, the reservations and holds on that node stay and the node it "
    "left shows phantom room, so podtier pins a 5th heavy pod to compute "
    "(webhook/headroom/state.py ClusterState._upsert_pod)"
)


class OverbookedPool(AssertionError):
    """podtier pinned more pods to a pool than its nodes can take (the known bug); any other
    failure of these tests is a real failure, not the expected one."""


def expect_pool_not_overbooked(summary: dict[str, int], expected: dict[str, int], why: str) -> None:
    if summary != expected:
        raise OverbookedPool(f"{json.dumps(summary)} != {json.dumps(expected)}\n{why}")


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


# Not strict: the phantom room exists only between the scheduler binding a pod to another node
# than podtier held it on and the binding of the pods still held there, so whether an admission
# falls in that window is a race. Measured here (2 cores): 9 of 15 bursts overbooked compute
# with 12 creations in flight (one burst by 2 pods), 3 of 15 with two waves of 12; 0 of 15 with
# a prototype of the fix (see the module docstring). Once fixed, drop the mark.
@pytest.mark.xfail(strict=False, raises=OverbookedPool, reason=KNOWN_BUG + " (a race)")
def test_a_burst_of_heavy_pods_fills_compute_exactly_and_the_rest_go_to_worker(
    cluster: Cluster,
) -> None:
    plane = cluster.plane
    names = [f"heavy-{i:02d}" for i in range(BURST)]
    create_burst(plane, names)
    outcomes = plane.wait_settled(NS, names, timeout=120)

    expected = {"pinned to compute": 4, "pinned to worker": 20, "bound": 24, "unschedulable": 0}
    expect_pool_not_overbooked(summarize(outcomes), expected, describe(outcomes))


@pytest.mark.xfail(strict=True, raises=OverbookedPool, reason=KNOWN_BUG)
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


@pytest.mark.xfail(strict=True, raises=OverbookedPool, reason=KNOWN_BUG)
@pytest.mark.parametrize(
    "others_seen",
    [
        pytest.param(True, id="the-others-held-as-pending-pods"),
        pytest.param(False, id="the-others-reserved-not-yet-seen"),
    ],
)
def test_headroom_shows_no_phantom_room_after_a_pod_binds_to_another_node(
    others_seen: bool,
) -> None:
    """The same events, straight into the headroom tracker (no cluster).

    podtier places heavy pods a, c on compute-0 and b, d on compute-1 (room for 2 each). The
    scheduler binds `a` to compute-1. podtier's compute-1 then carries a (bound) + b + d = 6 cpu
    of 5, and compute-0 only c: it finds room for a fifth heavy pod in a pool the scheduler can
    fit four into. b, c, d count either as pending pods the watch showed (held on their node)
    or, in a burst, as reservations for pods the watch has not shown yet."""
    compute = POOLS["compute"]
    heavy = requests(cpu="2", memory="4Gi")
    headroom = from_events(
        [node("compute-0", "compute", cpu="5"), node("compute-1", "compute", cpu="5")]
    )

    def admit(key: str) -> str | None:
        with headroom.transaction(0) as view:
            chosen = view.find_node(*compute, heavy)
            if chosen is not None:
                view.reserve(chosen, heavy, key)
            return chosen

    held = {name: admit(f"airflow/{name}") for name in "abcd"}
    assert held == {"a": "compute-0", "b": "compute-1", "c": "compute-0", "d": "compute-1"}
    for name in "abcd" if others_seen else "a":  # the watch shows them, pending in their pool
        pending = pod(name, cpu="2", memory="4Gi", phase="Pending", pool="compute")
        headroom.apply("Pod", "ADDED", pending)
    assert admit("airflow/e") is None  # full: e would go to worker

    bound = pod("a", "compute-1", cpu="2", memory="4Gi", phase="Pending", pool="compute")
    headroom.apply("Pod", "MODIFIED", bound)

    free = {n: headroom.state.free(n, "cpu") for n in ("compute-0", "compute-1")}
    chosen = admit("airflow/e")
    if chosen is not None:
        raise OverbookedPool(f"a fifth heavy pod placed on {chosen}; free cpu (milli): {free}")
