"""The insight gauges, read from the census at scrape time (a custom Prometheus collector).

- `podtier_airflow_pods{phase,tier,pool,namespace}`: Airflow pods by phase, tier and pool;
- `podtier_pool_desired_nodes{pool}`: the scaling signal of each pool with `scaling` set;
- `podtier_airflow_oldest_pending_seconds{pool}`: how long the oldest unbound Pending Airflow
  pod of each pool has waited since its creation (pools with such pods only);
- `podtier_pool_utilization_ratio{pool,resource}`: used / requested over the pool's Running
  Airflow pods, only while the `metrics.k8s.io` API answers (absent otherwise, never 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from podtier.webhook.insight.census import PodCensus
from podtier.webhook.insight.scaling import desired_nodes_by_pool
from podtier.webhook.observability.metrics import (
    AIRFLOW_PODS,
    OLDEST_PENDING,
    POOL_DESIRED_NODES,
    POOL_UTILIZATION,
)
from podtier.webhook.policy import Policy

Ratios = Callable[[], dict[str, dict[str, float]] | None]  # pool -> resource -> used/requested


class InsightCollector(Collector):
    def __init__(
        self, census: PodCensus, policy: Callable[[], Policy], utilization: Ratios | None = None
    ) -> None:
        self.census = census
        self.policy = policy
        self.utilization = utilization

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        pods, desired, utilization = self._families()
        for (phase, tier, pool, namespace), count in sorted(self.census.counts().items()):
            pods.add_metric([phase, tier, pool, namespace], count)
        yield pods
        pending = self.census.pending_by_pool()
        for pool, nodes in desired_nodes_by_pool(self.policy(), pending).items():
            desired.add_metric([pool], nodes)
        yield desired
        oldest = GaugeMetricFamily(
            OLDEST_PENDING,
            "Seconds the oldest Pending Airflow pod not yet bound to a node has waited since its "
            "creation, per pool.",
            labels=["pool"],
        )
        for pool, seconds in sorted(self.census.oldest_pending_by_pool().items()):
            oldest.add_metric([pool], seconds)
        yield oldest
        ratios = self.utilization() if self.utilization is not None else None
        if ratios:
            for pool, by_resource in sorted(ratios.items()):
                for resource, ratio in sorted(by_resource.items()):
                    utilization.add_metric([pool, resource], ratio)
            yield utilization

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                AIRFLOW_PODS,
                "Airflow pods by phase, podtier tier and pool (annotations), and namespace.",
                labels=["phase", "tier", "pool", "namespace"],
            ),
            GaugeMetricFamily(
                POOL_DESIRED_NODES,
                "Nodes each pool wants for its pending Airflow pods: "
                "min(max(ceil(pending / podsPerNode), minNodes), maxNodes).",
                labels=["pool"],
            ),
            GaugeMetricFamily(
                POOL_UTILIZATION,
                "Used / requested over each pool's Running Airflow pods (metrics.k8s.io).",
                labels=["pool", "resource"],
            ),
        )
