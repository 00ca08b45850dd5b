"""The insight gauges, read from the census at scrape time (a custom Prometheus collector).

- `podtier_airflow_pods{phase,tier,pool,namespace}`: Airflow pods by phase, tier and pool;
- `podtier_pool_desired_nodes{pool}`: the scaling signal of each pool with `scaling` set;
- `podtier_airflow_oldest_pending_seconds{pool}`: how long the oldest unbound Pending Airflow
  pod of each pool has waited since its creation (pools with such pods only);
- `podtier_pool_cost_per_hour{pool,resource,currency}`: what the requests of each pool's Running
  Airflow pods cost per hour, cpu and memory apart, at the policy's `cost` of the pool (pools
  with a `cost` only; the same prices as `podtier report`);
- `podtier_pool_utilization_ratio{pool,resource}`: used / requested over the pool's Running
  Airflow pods, only while the `metrics.k8s.io` API answers (absent otherwise, never 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from podtier.webhook.core.prices import pool_cost, price_per_hour
from podtier.webhook.insight.census import PodCensus
from podtier.webhook.insight.scaling import desired_nodes_by_pool
from podtier.webhook.observability.metrics import (
    AIRFLOW_PODS,
    OLDEST_PENDING,
    POOL_COST,
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
        yield self._costs()
        ratios = self.utilization() if self.utilization is not None else None
        if ratios:
            for pool, by_resource in sorted(ratios.items()):
                for resource, ratio in sorted(by_resource.items()):
                    utilization.add_metric([pool, resource], ratio)
            yield utilization

    def _costs(self) -> GaugeMetricFamily:
        costs = GaugeMetricFamily(
            POOL_COST,
            "What the requests of the pool's Running Airflow pods cost per hour, by resource, "
            "at the policy's prices for the pool (spec.pools.NAME.cost).",
            labels=["pool", "resource", "currency"],
        )
        policy = self.policy()
        for pool, (cpu, memory) in sorted(self.census.requested_by_pool().items()):
            cost = pool_cost(policy, pool)
            cpu_cost = price_per_hour(cpu, 0, 0, cost)
            memory_cost = price_per_hour(0, memory // 1000, 0, cost)  # milli-bytes to bytes
            if cpu_cost is None or memory_cost is None:
                continue
            costs.add_metric([pool, "cpu", policy.currency], cpu_cost)
            costs.add_metric([pool, "memory", policy.currency], memory_cost)
        return costs

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
