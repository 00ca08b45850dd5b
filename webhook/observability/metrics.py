"""podtier's Prometheus metrics, declared once. Every module that counts something imports
its metric from here, so names and labels stay in one place.

Headroom per pool is not pushed: it is computed when Prometheus scrapes, from a provider the
headroom tracker registers (`register_headroom_provider`), so a scrape always shows the
tracker's current picture and the admission path pays nothing for it.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

log = logging.getLogger("podtier.metrics")

# No `*_created` series: they double the scrape and say only when the process started.
disable_created_metrics()  # type: ignore[no-untyped-call]

ADMISSION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
    1.0,
)

HEADROOM_LAST_SYNC = Gauge(
    "podtier_headroom_last_sync_timestamp_seconds",
    "Unix time of the last list or watch event that refreshed the headroom picture.",
)

RESERVATIONS = Gauge(
    "podtier_reservations",
    "Placements podtier made that the watch has not yet seen bound to a node.",
)  # read at scrape time from the tracker (`register_reservations_provider`)

POLICY_RELOADS = Counter(
    "podtier_policy_reloads",
    "Policy reloads, by result (success or error).",
    ["result"],
)
for _result in ("success", "error"):
    POLICY_RELOADS.labels(_result)  # both series exist (at 0) before the first reload

CERT_EXPIRY = Gauge(
    "podtier_cert_expiry_timestamp_seconds",
    "Unix time at which the serving certificate expires.",
)

# Airflow pod insight (webhook.insight), from the headroom watch. The per-pod gauges are made
# at scrape time by `webhook.insight.collector.InsightCollector` from the census's counts:
AIRFLOW_PODS = "podtier_airflow_pods"  # {phase,tier,pool,namespace}
POOL_DESIRED_NODES = "podtier_pool_desired_nodes"  # {pool}
POOL_UTILIZATION = "podtier_pool_utilization_ratio"  # {pool,resource}; only with metrics.k8s.io

AIRFLOW_PENDING_SECONDS = Histogram(
    "podtier_airflow_pending_seconds",
    "How long Airflow pods waited from creation to being bound to a node, by tier and pool.",
    ["tier", "pool"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)

CLEANUP_DELETED = Counter(
    "podtier_cleanup_deleted",
    "Finished Airflow worker pods deleted by cleanup, by phase (Succeeded or Failed).",
    ["phase"],
)

# Learning (webhook.learning): no dag_id or task_id labels, so the series stay few.
OOM_ESCALATIONS = Counter(
    "podtier_oom_escalations",
    "Pods given more memory because their task instance's previous pod was OOMKilled, by the "
    "tier they were given.",
    ["tier"],
)
# What per-resource recommendations change against the tier's own requests: freed when they ask
# for less, added when they ask for more; applied (the pod was sized by it) or recommended only.
RIGHT_SIZED_CPU = Counter(
    "podtier_rightsizing_cpu_cores",
    "CPU request (cores) that per-resource recommendations free or add against the tier's own "
    "request, per admitted pod, by direction (freed, added) and mode (applied, recommended).",
    ["direction", "mode"],
)
RIGHT_SIZED_MEMORY = Counter(
    "podtier_rightsizing_memory_bytes",
    "Memory request (bytes) that per-resource recommendations free or add against the tier's "
    "own request, per admitted pod, by direction (freed, added) and mode (applied, "
    "recommended).",
    ["direction", "mode"],
)
PROFILES = Gauge(
    "podtier_profiles",
    "TaskProfile objects this replica reads: valid ones, and ignored ones (unreadable, logged).",
    ["state"],
)


# --- the admission path -------------------------------------------------------------------


class AdmissionCollector(Collector):
    """`podtier_admission_requests_total{webhook,outcome,tier,pool}` (counter) and
    `podtier_admission_duration_seconds{webhook}` (histogram), from plain counts.

    The admission path counts on the event loop's thread only. prometheus-client's Counter and
    Histogram take a lock and find the label set's child on every review, which cost more than
    the counting; here a review costs two dict updates and a bisect, and a scrape (from any
    thread) turns copies of the counts into the same families."""

    def __init__(self, buckets: Sequence[float] = ADMISSION_BUCKETS) -> None:
        self.bounds = (*buckets, math.inf)
        self.requests: dict[tuple[str, str, str, str], int] = {}
        # webhook -> [count per bucket (not cumulative) ..., sum of seconds]
        self.durations: dict[str, list[float]] = {}

    def observe(self, webhook: str, outcome: str, tier: str, pool: str, seconds: float) -> None:
        key = (webhook, outcome, tier, pool)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        counts = self.durations.get(webhook)
        if counts is None:
            counts = self.durations[webhook] = [0.0] * (len(self.bounds) + 1)
        counts[bisect_left(self.bounds, seconds)] += 1  # the first bound >= seconds
        counts[-1] += seconds

    def describe(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        requests, durations = self._families()
        for labels, count in list(self.requests.items()):
            requests.add_metric(labels, count)
        for webhook, observed in list(self.durations.items()):
            observed = list(observed)
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip(self.bounds, observed, strict=False):
                cumulative += in_bucket
                buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
            durations.add_metric([webhook], buckets, sum_value=observed[-1])
        yield requests
        yield durations

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        return (
            CounterMetricFamily(
                "podtier_admission_requests",
                "Admission reviews answered, by webhook, outcome, tier and pool.",
                labels=["webhook", "outcome", "tier", "pool"],
            ),
            HistogramMetricFamily(
                "podtier_admission_duration_seconds",
                "Time to answer one admission review, from request received to response built.",
                labels=["webhook"],
            ),
        )


ADMISSION = AdmissionCollector()
REGISTRY.register(ADMISSION)
observe_admission = ADMISSION.observe
"""Count one answered review and record how long it took."""


# --- headroom per pool, computed at scrape time ---------------------------------------------

# The resources shown per pool, and the unit each is shown in (milli-units are divided by 1000:
# cpu in cores, memory in bytes, GPUs in devices).
HEADROOM_RESOURCES = ("cpu", "memory", "nvidia.com/gpu")


@dataclass(frozen=True)
class PoolHeadroom:
    """Free capacity in one pool, in milli-units per resource (as `core.resources` keeps it).

    `largest_free`: the most any one schedulable node of the pool has free, per resource (a
    pod fits on a node, not on a pool's sum). `total_free`: the sum over those nodes."""

    pool: str
    largest_free: Mapping[str, int] = field(default_factory=dict)
    total_free: Mapping[str, int] = field(default_factory=dict)


HeadroomProvider = Callable[[], Iterable[PoolHeadroom]]
"""Called on every scrape, from the scrape's thread; returns the current figures per pool.
It must be quick and must not block on the network (read the tracker's latest picture)."""


class HeadroomCollector(Collector):
    """`podtier_headroom_largest_free{pool,resource}` and `podtier_headroom_free{pool,resource}`
    from the registered provider. No provider (headroom off): the families, with no samples."""

    def __init__(self, provider: HeadroomProvider | None = None) -> None:
        self.provider = provider

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        largest, total = self._families()
        provider = self.provider
        if provider is not None:
            try:
                pools = list(provider())
            except Exception:
                log.exception("headroom provider failed; headroom gauges left out of this scrape")
                pools = []
            for pool in pools:
                for resource in HEADROOM_RESOURCES:
                    labels = [pool.pool, resource]
                    largest.add_metric(labels, pool.largest_free.get(resource, 0) / 1000)
                    total.add_metric(labels, pool.total_free.get(resource, 0) / 1000)
        yield largest
        yield total

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        largest = GaugeMetricFamily(
            "podtier_headroom_largest_free",
            "The most of a resource free on any one schedulable node of the pool "
            "(cpu in cores, memory in bytes, GPUs in devices).",
            labels=["pool", "resource"],
        )
        total = GaugeMetricFamily(
            "podtier_headroom_free",
            "A resource free in the pool, summed over its schedulable nodes "
            "(cpu in cores, memory in bytes, GPUs in devices).",
            labels=["pool", "resource"],
        )
        return largest, total


HEADROOM = HeadroomCollector()
REGISTRY.register(HEADROOM)


def register_headroom_provider(provider: HeadroomProvider | None) -> None:
    """Make `provider` the source of the headroom gauges (None: headroom off, no samples)."""
    HEADROOM.provider = provider


def register_reservations_provider(provider: Callable[[], float] | None) -> None:
    """Make `provider` (the tracker's count, read at each scrape) the value of
    `podtier_reservations`; None: 0."""
    RESERVATIONS.set_function(provider or (lambda: 0))
