"""Wait or spill against a real kube-apiserver and kube-scheduler, with a stand-in autoscaler
(`autoscaler.PoolAutoscaler`) that adds a Ready compute node a few seconds after pods pend for
compute.

The cluster: 4 worker nodes (16 cpu) and 2 compute nodes (5 cpu, 20Gi: room for 2 heavy pods
each). Four heavy pods fill compute; a fifth finds compute full and worker with room. With
`maxWaitSeconds` at least compute's `provisionSeconds` it waits for compute, pinned there, and
the autoscaler's new node takes it; with less it spills to worker at once, and compute does
not grow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from podtier.policies import DEFAULT_POLICY
from tests.controlplane import ControlPlane, control_plane  # noqa: F401
from tests.webhook.headroom.autoscaler import PoolAutoscaler
from tests.webhook.headroom.burst import (
    COMPUTE_TAINT,
    COMPUTES,
    NS,
    BurstCluster,
    Cluster,
    create_burst,
    describe,
    heavy_pod,
)

PROVISION_SECONDS = 6  # what the policy says; the stand-in autoscaler takes 4 s


@pytest.fixture
def make_cluster(
    control_plane: ControlPlane,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Callable[[float], Cluster]]:
    burst = BurstCluster(control_plane, tmp_path)

    def start(max_wait: float) -> Cluster:
        doc = yaml.safe_load(DEFAULT_POLICY.read_text())
        doc["spec"]["tiers"]["heavy"]["maxWaitSeconds"] = max_wait
        doc["spec"]["pools"]["compute"]["autoscaling"] = {
            "maxNodes": 3,
            "node": {"cpu": "5", "memory": "20Gi"},
            "provisionSeconds": PROVISION_SECONDS,
        }
        policy = tmp_path / "autoscaling.yaml"
        policy.write_text(yaml.safe_dump(doc))
        return burst.start(policy=policy)

    try:
        yield start
    finally:
        burst.close()


def fill_compute(cluster: Cluster) -> None:
    names = [f"heavy-{i}" for i in range(4)]
    create_burst(cluster.plane, names, in_flight=1)
    bound = cluster.plane.wait_bound(NS, names)
    assert sorted(set(bound.values())) == COMPUTES, bound
    cluster.wait_podtier_free("compute", "cpu", 2)  # 1 cpu left on each: no heavy pod fits


def autoscaler(cluster: Cluster) -> PoolAutoscaler:
    return PoolAutoscaler(
        cluster.plane,
        NS,
        {"node-type": "compute-optimized"},
        [COMPUTE_TAINT],
        prefix="compute",
        cpu="5",
        memory="20Gi",
        max_nodes=3,
        delay=4.0,
    )


def test_a_heavy_pod_waits_for_the_node_compute_adds_when_max_wait_allows(
    make_cluster: Callable[[float], Cluster],
) -> None:
    cluster = make_cluster(60)
    fill_compute(cluster)
    plane = cluster.plane
    with autoscaler(cluster) as scaler:
        plane.core.create_namespaced_pod(NS, heavy_pod("heavy-waits"))
        outcome = plane.outcomes(NS, ["heavy-waits"])["heavy-waits"]
        assert outcome.annotations["podtier.io/pool"] == "compute", describe({"p": outcome})
        assert outcome.annotations["podtier.io/reason"].endswith(
            f"pool compute (pinned): waits for compute: it can add a node (~{PROVISION_SECONDS} s)"
        )
        assert outcome.node_selector == {"node-type": "compute-optimized"}
        bound = plane.wait_bound(NS, ["heavy-waits"], timeout=60)
    assert scaler.added == ["compute-2"]
    assert bound == {"heavy-waits": "compute-2"}


def test_a_heavy_pod_spills_to_worker_when_the_new_node_would_come_too_late(
    make_cluster: Callable[[float], Cluster],
) -> None:
    cluster = make_cluster(PROVISION_SECONDS - 1)
    fill_compute(cluster)
    plane = cluster.plane
    with autoscaler(cluster) as scaler:
        plane.core.create_namespaced_pod(NS, heavy_pod("heavy-spills"))
        bound = plane.wait_bound(NS, ["heavy-spills"], timeout=60)
        outcome = plane.outcomes(NS, ["heavy-spills"])["heavy-spills"]
        reason = outcome.annotations["podtier.io/reason"]
        assert outcome.annotations["podtier.io/pool"] == "worker", reason
        assert bound["heavy-spills"].startswith("worker-")
        assert (
            f"compute frees room in ~{PROVISION_SECONDS} s at the soonest, over the tier's "
            f"maxWaitSeconds {PROVISION_SECONDS - 1}" in reason
        )
        plane.wait_settled(NS, ["heavy-spills"])
    assert scaler.added == []  # nothing pended for compute: it did not grow


def test_only_as_many_pods_wait_as_the_nodes_compute_may_still_add_take(
    make_cluster: Callable[[float], Cluster],
) -> None:
    """Four more heavy pods, one after another as fast as the API server takes them: compute
    may add one node (maxNodes 3), room for 2. The first two wait for it (each held, so the
    next sees it waiting), the other two spill to worker."""
    cluster = make_cluster(60)
    fill_compute(cluster)
    plane = cluster.plane
    names = [f"heavy-more-{i}" for i in range(4)]
    with autoscaler(cluster) as scaler:
        create_burst(plane, names, in_flight=1)
        bound = plane.wait_bound(NS, names, timeout=60)
        outcomes = plane.outcomes(NS, names)
    pools = {name: o.annotations["podtier.io/pool"] for name, o in outcomes.items()}
    assert sorted(pools.values()) == ["compute", "compute", "worker", "worker"], describe(outcomes)
    assert scaler.added == ["compute-2"]
    for name, pool in pools.items():
        assert bound[name].startswith(f"{pool}-"), describe(outcomes)
    spilled = [
        o.annotations["podtier.io/reason"]
        for o in outcomes.values()
        if o.annotations["podtier.io/pool"] == "worker"
    ]
    assert all("nothing says when compute frees room" in r for r in spilled), spilled
