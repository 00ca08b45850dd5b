"""Pool utilization from metrics.k8s.io: absent (not zero) without the API, used / requested
over the pool's Running Airflow pods with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.policy.load import load_policy
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import node
from tests.webhook.headroom.feeds import wait_for
from tests.webhook.insight.pods import airflow_pod, watched


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        server.put(node("w1"))
        yield server


def pod_metrics(name: str, cpu: str, memory: str, namespace: str = "airflow") -> dict:
    return {
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": name, "namespace": namespace},
        "timestamp": "2026-11-26T06:00:00Z",
        "window": "30s",
        "containers": [{"name": "base", "usage": {"cpu": cpu, "memory": memory}}],
    }


def utilization(registry, pool: str, resource: str) -> float | None:
    return registry.get_sample_value(
        "podtier_pool_utilization_ratio", {"pool": pool, "resource": resource}
    )


def test_without_the_metrics_api_the_metric_is_absent(api: KubeAPI) -> None:
    api.put(airflow_pod("a", node="w1", phase="Running"))
    with watched(api, load_policy([DEFAULT_POLICY])) as (_, insight, registry):
        wait_for(
            lambda: (
                registry.get_sample_value(
                    "podtier_airflow_pods",
                    {
                        "phase": "Running",
                        "tier": "medium",
                        "pool": "worker",
                        "namespace": "airflow",
                    },
                )
                == 1
            )
        )
        assert insight.poller is not None
        insight.poller.poll_once()
        assert insight.poller.current() is None
        names = {m.name for m in registry.collect()}
        assert "podtier_pool_utilization_ratio" not in names
        assert "podtier_airflow_pods" in names


def test_with_the_metrics_api_utilization_is_used_over_requested(api: KubeAPI) -> None:
    api.metrics_api = True
    api.put(airflow_pod("a", node="w1", phase="Running", cpu="1", memory="2Gi"))
    api.put(airflow_pod("b", node="w1", phase="Running", cpu="3", memory="2Gi"))
    api.put(airflow_pod("no-sample", node="w1", phase="Running", cpu="8", memory="8Gi"))
    api.put(airflow_pod("waiting", cpu="8", memory="8Gi"))
    api.put(pod_metrics("a", "500m", "1Gi"))
    api.put(pod_metrics("b", "1500m", "1Gi"))
    api.put(pod_metrics("waiting", "1", "1Gi"))  # not Running: not counted
    api.put(pod_metrics("unrelated", "4", "4Gi", namespace="kube-system"))
    with watched(api, load_policy([DEFAULT_POLICY])) as (_, insight, registry):
        wait_for(
            lambda: (
                registry.get_sample_value(
                    "podtier_airflow_pods",
                    {
                        "phase": "Running",
                        "tier": "medium",
                        "pool": "worker",
                        "namespace": "airflow",
                    },
                )
                == 3
            )
        )
        assert insight.poller is not None
        insight.poller.poll_once()
        # (0.5 + 1.5) / (1 + 3) cpu; (1 + 1) / (2 + 2) Gi memory
        assert utilization(registry, "worker", "cpu") == pytest.approx(0.5)
        assert utilization(registry, "worker", "memory") == pytest.approx(0.5)
        api.metrics_api = False  # metrics-server uninstalled: the reading goes away
        insight.poller.poll_once()
        assert utilization(registry, "worker", "cpu") is None
