"""Insight on the live watch of the test API server, through the real `kubernetes` client: the
gauges follow Airflow pods through their phases, the wait for a node lands in the histogram,
and each pool's desired nodes follow its pending pods."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator

import orjson
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.headroom.decode import PodFields, decode_pod
from podtier.webhook.insight.census import PodCensus
from podtier.webhook.policy import Policy
from podtier.webhook.policy.load import load_policy, load_policy_text
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import node
from tests.webhook.headroom.feeds import wait_for
from tests.webhook.insight.pods import airflow_pod, plain_pod, scaled_policy, watched

COMPUTE = {"node-type": "compute-optimized"}


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        server.put(node("w1"))
        yield server


def pods_gauge(
    registry: CollectorRegistry,
    phase: str,
    tier: str = "medium",
    pool: str = "worker",
    namespace: str = "airflow",
) -> float | None:
    labels = {"phase": phase, "tier": tier, "pool": pool, "namespace": namespace}
    return registry.get_sample_value("podtier_airflow_pods", labels)


def phases(registry: CollectorRegistry) -> dict[str, float]:
    return {
        phase: pods_gauge(registry, phase) or 0.0
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown")
    }


def test_gauges_follow_a_pod_through_its_phases(api: KubeAPI) -> None:
    api.put(plain_pod("web-1", phase="Running"))
    api.put(airflow_pod("other", tier="heavy", pool="compute", node="w1", phase="Running"))
    with watched(api, load_policy([DEFAULT_POLICY])) as (_, _, registry):
        assert pods_gauge(registry, "Running", "heavy", "compute") == 1
        steps = [
            (airflow_pod("t1"), "Pending"),
            (airflow_pod("t1", node="w1"), "Pending"),  # bound, pulling its image
            (airflow_pod("t1", node="w1", phase="Running"), "Running"),
            (airflow_pod("t1", node="w1", phase="Failed", finished=time.time()), "Failed"),
        ]
        for pod, phase in steps:
            api.put(pod)
            expected = {p: (1.0 if p == phase else 0.0) for p in phases(registry)}
            wait_for(lambda e=expected: phases(registry) == e, what=f"t1 counted as {phase}")
        api.remove("Pod", "t1", "airflow")
        wait_for(lambda: set(phases(registry).values()) == {0.0}, what="t1 gone")
        # the non-Airflow pod was never counted, the other Airflow pod still is
        assert all(s.labels.get("namespace") != "default" for s in _samples(registry))
        assert pods_gauge(registry, "Running", "heavy", "compute") == 1


def test_pods_without_podtier_annotations_count_with_empty_tier_and_their_selector_pool(
    api: KubeAPI,
) -> None:
    api.put(airflow_pod("bare", tier=None, pool=None))
    api.put(airflow_pod("nowhere", tier=None, pool=None, node_selector={}))
    with watched(api, load_policy([DEFAULT_POLICY])) as (_, _, registry):
        assert pods_gauge(registry, "Pending", tier="", pool="worker") == 1
        assert pods_gauge(registry, "Pending", tier="", pool="") == 1


def _samples(registry: CollectorRegistry) -> list:
    return [s for m in registry.collect() if m.name == "podtier_airflow_pods" for s in m.samples]


def _histogram(tier: str, pool: str) -> dict[str, float]:
    labels = {"tier": tier, "pool": pool}
    out = {
        "count": REGISTRY.get_sample_value("podtier_airflow_pending_seconds_count", labels) or 0.0,
        "sum": REGISTRY.get_sample_value("podtier_airflow_pending_seconds_sum", labels) or 0.0,
    }
    for le in ("30.0", "60.0"):
        bucket = {**labels, "le": le}
        out[le] = REGISTRY.get_sample_value("podtier_airflow_pending_seconds_bucket", bucket) or 0.0
    return out


def test_the_wait_from_creation_to_binding_lands_in_the_histogram(api: KubeAPI) -> None:
    created = time.time() - 300
    waited = 42.0
    api.put(airflow_pod("slow", tier="light", pool="worker", created=created))
    with watched(api, load_policy([DEFAULT_POLICY])) as (_, _, registry):
        before = _histogram("light", "worker")
        api.put(
            airflow_pod(
                "slow", tier="light", node="w1", created=created, scheduled=created + waited
            )
        )
        wait_for(
            lambda: _histogram("light", "worker")["count"] == before["count"] + 1,
            what="the wait measured",
        )
        after = _histogram("light", "worker")
        assert after["sum"] - before["sum"] == pytest.approx(waited)
        assert after["60.0"] - before["60.0"] == 1  # 42 s: in the 60 s bucket...
        assert after["30.0"] - before["30.0"] == 0  # ...not in the 30 s one
        # later events of the same pod are not measured again
        api.put(
            airflow_pod(
                "slow",
                tier="light",
                node="w1",
                phase="Running",
                created=created,
                scheduled=created + waited,
            )
        )
        wait_for(lambda: pods_gauge(registry, "Running", "light") == 1, what="running")
        assert _histogram("light", "worker")["count"] == after["count"]


def test_pods_bound_before_podtier_started_do_not_replay_their_waits(api: KubeAPI) -> None:
    long_ago = time.time() - 86400
    api.put(
        airflow_pod(
            "old",
            tier="gpu",
            pool="gpu",
            node="w1",
            phase="Running",
            created=long_ago,
            scheduled=long_ago + 5,
        )
    )
    before = _histogram("gpu", "gpu")["count"]
    with watched(api, load_policy([DEFAULT_POLICY])) as (_, _, registry):
        assert pods_gauge(registry, "Running", "gpu", "gpu") == 1
        assert _histogram("gpu", "gpu")["count"] == before


def test_desired_nodes_follow_the_pending_pods_of_each_pool(api: KubeAPI) -> None:
    policy = scaled_policy(
        {
            "worker": {"podsPerNode": 4, "minNodes": 1, "maxNodes": 3},
            "compute": {"podsPerNode": 2, "maxNodes": 5},
        }
    )

    def desired(registry: CollectorRegistry, pool: str) -> float | None:
        return registry.get_sample_value("podtier_pool_desired_nodes", {"pool": pool})

    with watched(api, policy) as (_, _, registry):
        assert (desired(registry, "worker"), desired(registry, "compute")) == (1, 0)
        assert desired(registry, "gpu") is None  # no scaling set: no signal at all
        for i in range(9):  # 9 waiting: ceil(9/4) = 3
            api.put(airflow_pod(f"w{i}"))
        api.put(airflow_pod("bound", node="w1"))  # bound already: needs no new node
        for i in range(3):  # by nodeSelector, no pool annotation: ceil(3/2) = 2
            api.put(airflow_pod(f"c{i}", pool=None, node_selector=COMPUTE))
        wait_for(
            lambda: (desired(registry, "worker"), desired(registry, "compute")) == (3, 2),
            what="desired nodes 3 and 2",
        )
        for i in range(20):  # 29 waiting: ceil(29/4) = 8, capped at 3
            api.put(airflow_pod(f"x{i}"))
        for i in range(9):
            api.put(airflow_pod(f"w{i}", node="w1", phase="Running"))
        wait_for(lambda: desired(registry, "worker") == 3, what="capped at maxNodes")
        for i in range(20):
            api.remove("Pod", f"x{i}", "airflow")
        wait_for(lambda: desired(registry, "worker") == 1, what="back to minNodes")


def test_the_census_keeps_little_per_pod_however_many_pods_share_a_shape() -> None:
    """At 150,000 pods every byte per pod is 150 kB: pods of one shape share one entry, so the
    census keeps a dict slot per pod, not a copy of what it read."""
    policy = load_policy([DEFAULT_POLICY])
    census = PodCensus(lambda: policy)
    pods = []
    for i in range(3000):
        raw = airflow_pod(f"p{i}", phase="Running", node="w1", created=1e9, scheduled=1e9 + 5)
        pods.append((f"airflow/p{i}", decode_pod(orjson.dumps(raw), PodFields.LISTENERS)))
    tracemalloc.start()
    for key, raw in pods:
        census("MODIFIED", key, raw)
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert census.counts() == {("Running", "medium", "worker", "airflow"): 3000}
    assert kept / len(pods) < 120, f"{kept / len(pods):.0f} bytes per pod"


def test_the_oldest_unbound_wait_per_pool_follows_pods_until_bound(api: KubeAPI) -> None:
    now = time.time()
    api.put(airflow_pod("old", pool="worker", created=now - 900))
    api.put(airflow_pod("new", pool="worker", created=now - 60))
    api.put(airflow_pod("heavy", pool="compute", created=now - 120, node_selector=COMPUTE))
    with watched(api, load_policy([DEFAULT_POLICY])) as (_, _, registry):

        def oldest(pool: str) -> float | None:
            return registry.get_sample_value(
                "podtier_airflow_oldest_pending_seconds", {"pool": pool}
            )

        assert oldest("worker") == pytest.approx(900, abs=30)
        assert oldest("compute") == pytest.approx(120, abs=30)
        api.put(airflow_pod("old", pool="worker", node="w1", created=now - 900))  # bound
        wait_for(lambda: (oldest("worker") or 0) < 300, what="the bound pod no longer waits")
        assert oldest("worker") == pytest.approx(60, abs=30)
        api.remove("Pod", "new", "airflow")
        wait_for(lambda: oldest("worker") is None, what="no unbound pod left in worker")


def priced_policy() -> Policy:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["currency"] = "EUR"
    doc["spec"]["pools"]["worker"]["cost"] = {"cpuHour": 0.04, "memoryGiBHour": 0.005}
    return load_policy_text([("priced.yaml", yaml.safe_dump(doc))])


def test_the_cost_per_hour_of_running_pods_requests_follows_them_per_pool(api: KubeAPI) -> None:
    running = {"node": "w1", "phase": "Running"}
    api.put(airflow_pod("a", cpu="2", memory="4Gi", **running))
    api.put(airflow_pod("b", cpu="500m", memory="1Gi", **running))
    api.put(airflow_pod("waiting", cpu="8", memory="32Gi"))  # not Running: costs nothing yet
    api.put(airflow_pod("heavy", pool="compute", node_selector=COMPUTE, **running))  # no prices
    with watched(api, priced_policy()) as (_, _, registry):

        def cost(resource: str, pool: str = "worker") -> float | None:
            labels = {"pool": pool, "resource": resource, "currency": "EUR"}
            return registry.get_sample_value("podtier_pool_cost_per_hour", labels)

        assert cost("cpu") == pytest.approx(2.5 * 0.04)
        assert cost("memory") == pytest.approx(5 * 0.005)
        assert cost("cpu", pool="compute") is None  # the pool has no `cost`
        api.put(airflow_pod("b", cpu="500m", memory="1Gi", node="w1", phase="Succeeded"))
        wait_for(lambda: cost("cpu") == pytest.approx(2 * 0.04), what="b finished")
        assert cost("memory") == pytest.approx(4 * 0.005)
        api.remove("Pod", "a", "airflow")
        wait_for(lambda: cost("cpu") is None, what="no Running pod left in worker")
