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

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest

from podtier.policies import DEFAULT_POLICY
from tests.controlplane import ControlPlane, control_plane  # noqa: F401
from tests.webhook.headroom.burst import (
    BURST,
    COMPUTE_TOLERATION,
    COMPUTES,
    NS,
    BurstCluster,
    Cluster,
    assert_bound_in_their_pools,
    create_burst,
    describe,
    expect_pool_not_overbooked,
    heavy_pod,
    pools_of,
    summarize,
    template_heavy_pod,
    ungate,
)


@pytest.fixture
def make_cluster(
    control_plane: ControlPlane,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(workers=4, worker_cpu="16", replicas=1)`: see `BurstCluster.start`."""
    burst = BurstCluster(control_plane, tmp_path)
    try:
        yield burst.start
    finally:
        burst.close()


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    """The issue's cluster: 4 worker nodes (16 cpu), 2 compute nodes (room for 2 heavy each)."""
    return make_cluster()


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


def test_two_hundred_heavy_pods_32_at_a_time_fill_compute_exactly(
    make_cluster: Callable[..., Cluster],
) -> None:
    """N = 200 with 32 creations in flight; the workers take the other 196 (7 x 32)."""
    cluster = make_cluster(workers=7, worker_cpu="64")
    names = [f"heavy-{i:03d}" for i in range(200)]
    create_burst(cluster.plane, names, in_flight=32)
    outcomes = cluster.plane.wait_settled(NS, names, timeout=240)
    expected = {"pinned to compute": 4, "pinned to worker": 196, "bound": 200, "unschedulable": 0}
    expect_pool_not_overbooked(summarize(outcomes), expected, describe(outcomes))
    assert_bound_in_their_pools(outcomes)


def test_two_replicas_fill_the_cluster_to_its_last_slot_without_overbooking(
    make_cluster: Callable[..., Cluster],
) -> None:
    """The same 200 pods with two replicas: the cluster takes exactly 200, the worker nodes
    split 4 and 3 between the replicas, so one replica's share fills first and it borrows. No
    pod may fall back to a full compute pool while worker room is only hidden by shadows."""
    cluster = make_cluster(workers=7, worker_cpu="64", replicas=2)
    names = [f"heavy-{i:03d}" for i in range(200)]
    create_burst(cluster.plane, names, in_flight=32)
    outcomes = cluster.plane.wait_settled(NS, names, timeout=240)
    summary = summarize(outcomes)
    assert summary["pinned to compute"] <= 4, describe(outcomes)
    assert summary["unschedulable"] == 0 and summary["bound"] == 200, describe(outcomes)
    assert_bound_in_their_pools(outcomes)
    print(f"\n2 replicas, 200 pods: {json.dumps(summary)}")


def test_a_burst_of_mixed_tiers_fills_each_pool_within_its_room(
    make_cluster: Callable[..., Cluster],
) -> None:
    """Heavy, medium and light pods at once; workers of 8 cpu, so worker is packed with three
    sizes (heavy 2 cpu, medium 1, light 250m) while compute takes heavy pods only."""
    cluster = make_cluster(workers=4, worker_cpu="8")
    tiers = {**{f"heavy-{i:02d}": "heavy" for i in range(10)}}
    tiers |= {f"medium-{i:02d}": "medium" for i in range(10)}
    tiers |= {f"light-{i:02d}": "light" for i in range(16)}
    names = sorted(tiers, key=lambda n: n[-2:])  # interleaved
    create_burst(cluster.plane, names, in_flight=16, tier_of=tiers.__getitem__)
    outcomes = cluster.plane.wait_settled(NS, names, timeout=120)
    assert_bound_in_their_pools(outcomes)
    in_compute = [n for n, pool in pools_of(outcomes).items() if pool == "compute"]
    assert sorted(tiers[n] for n in in_compute) == ["heavy"] * 4
    for name, outcome in outcomes.items():
        assert outcome.annotations["podtier.io/tier"] == tiers[name]


def test_pods_finishing_and_deleted_during_a_burst_free_their_room(
    make_cluster: Callable[..., Cluster],
) -> None:
    """As Airflow does: pods end (Succeeded, written as a kubelet would) and are deleted while
    the burst goes on. The room they free is used again, and never twice."""
    cluster = make_cluster()
    plane = cluster.plane
    names = [f"heavy-{i:02d}" for i in range(36)]
    finished: set[str] = set()
    stop = threading.Event()

    def finish_bound_pods() -> None:
        while not stop.is_set():
            for name, outcome in plane.outcomes(NS).items():
                if outcome.node and name not in finished and len(finished) < 12:
                    plane.set_pod_status(NS, name, "Succeeded", exit_code=0)
                    plane.core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
                    finished.add(name)
            time.sleep(0.05)

    finisher = threading.Thread(target=finish_bound_pods)
    finisher.start()
    try:
        create_burst(plane, names[:18])
        time.sleep(0.5)
        create_burst(plane, names[18:])
    finally:
        stop.set()
        finisher.join()
    left = [n for n in names if n not in finished]
    outcomes = plane.wait_settled(NS, left, timeout=120)
    assert_bound_in_their_pools(outcomes)
    assert len(finished) == 12
    in_compute = [n for n, pool in pools_of(outcomes).items() if pool == "compute"]
    assert len(in_compute) <= 4


@pytest.mark.parametrize("replicas", [2, 3], ids=["two-replicas", "three-replicas"])
def test_replicas_behind_a_spreader_never_place_more_than_a_pool_fits(
    make_cluster: Callable[..., Cluster], replicas: int
) -> None:
    """The issue's second row: several replicas, each API server connection to one of them."""
    cluster = make_cluster(replicas=replicas)
    names = [f"heavy-{i:02d}" for i in range(BURST)]
    create_burst(cluster.plane, names)
    outcomes = cluster.plane.wait_settled(NS, names, timeout=120)
    summary = summarize(outcomes)
    assert summary["pinned to compute"] <= 4, describe(outcomes)
    assert summary["unschedulable"] == 0 and summary["bound"] == BURST, describe(outcomes)
    assert_bound_in_their_pools(outcomes)
    assert cluster.spreader is not None
    assert all(cluster.spreader.connections), cluster.spreader.connections  # each one answered
    print(
        f"\n{replicas} replicas: {json.dumps(summary)}, connections {cluster.spreader.connections}"
    )


def test_prefer_mode_lets_the_scheduler_spill_a_burst_between_pools(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """Heavy in `prefer` mode, two replicas: podtier writes affinity over compute and worker,
    the scheduler resolves the races itself, and every pod binds, compute first."""
    text = DEFAULT_POLICY.read_text()
    placement = "      placement: [compute, worker]"
    assert placement in text
    policy = tmp_path / "prefer.yaml"
    policy.write_text(text.replace(placement, f"{placement}\n      placementMode: prefer"))
    cluster = make_cluster(replicas=2, policy=policy)
    names = [f"heavy-{i:02d}" for i in range(BURST)]
    create_burst(cluster.plane, names)
    outcomes = cluster.plane.wait_settled(NS, names, timeout=120)
    assert all(o.node for o in outcomes.values()), describe(outcomes)
    assert sorted(pools_of(outcomes).values()).count("compute") == 4  # preferred, and full
    for outcome in outcomes.values():
        assert outcome.node_selector == {}
        assert (
            "preferred, scheduler picks among compute, worker"
            in (outcome.annotations["podtier.io/reason"])
        )


def test_prefer_with_airflows_template_selector_fills_compute_and_predicts_each_pool(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    """The issue's burst: 24 heavy pods built by Airflow from the docs' pod template, whose
    `nodeSelector: {node-type: worker}` would keep every pod off compute, `prefer` mode, two
    replicas, compute with room for 4. podtier takes the pool key out of the nodeSelector: every
    pod binds, compute fills to its room, and each pod is bound in the pool podtier wrote."""
    text = DEFAULT_POLICY.read_text()
    placement = "      placement: [compute, worker]"
    policy = tmp_path / "prefer.yaml"
    policy.write_text(text.replace(placement, f"{placement}\n      placementMode: prefer"))
    cluster = make_cluster(replicas=2, policy=policy)
    plane = cluster.plane
    with contextlib.suppress(kubernetes.client.ApiException):
        plane.core.create_namespaced_service_account(NS, {"metadata": {"name": "airflow-worker"}})
    names = [f"etl-{i:02d}" for i in range(BURST)]
    create_burst(plane, names, build=template_heavy_pod)
    outcomes = plane.wait_settled(NS, names, timeout=120)
    summary = summarize(outcomes)
    print(f"\nprefer, Airflow's template, 2 replicas: {json.dumps(summary)}")
    assert summary["bound"] == BURST and summary["unschedulable"] == 0, describe(outcomes)
    assert sorted(pools_of(outcomes).values()).count("compute") == 4, describe(outcomes)
    assert_bound_in_their_pools(outcomes)
    for outcome in outcomes.values():
        assert outcome.node_selector == {}
