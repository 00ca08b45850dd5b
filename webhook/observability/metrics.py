"""podtier's Prometheus metrics, declared once. Every module that counts something imports
its metric from here, so names and labels stay in one place.

Headroom per pool is not pushed: it is computed when Prometheus scrapes, from a provider the
headroom tracker registers (`register_headroom_provider`), so a scrape always shows the
tracker's current picture and the admission path pays nothing for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("podtier.metrics")

# No `*_created` series: they double the scrape and say only when the process started.
disable_created_metrics()  # type: ignore[no-untyped-call]

ADMISSION_REQUESTS = Counter(
    "podtier_admission_requests",
    "Admission reviews answered, by webhook, outcome, tier and pool.",
    ["webhook", "outcome", "tier", "pool"],
)

ADMISSION_DURATION = Histogram(
    "podtier_admission_duration_seconds",
    "Time to answer one admission review, from request received to response built.",
    ["webhook"],
    buckets=(
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
    ),
)

HEADROOM_LAST_SYNC = Gauge(
    "podtier_headroom_last_sync_timestamp_seconds",
    "Unix time of the last list or watch event that refreshed the headroom picture.",
)

RESERVATIONS = Gauge(
    "podtier_reservations",
    "Placements podtier made that the watch has not yet seen bound to a node.",
)

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
PROFILES = Gauge(
    "podtier_profiles",
    "TaskProfile objects this replica reads: valid ones, and ignored ones (unreadable, logged).",
    ["state"],
)


# --- the admission path -------------------------------------------------------------------

# Label children looked up once per label set: `labels()` takes a lock and builds a key on
# every call, which the hot path need not pay. Label sets are few (webhooks x outcomes x the
# policy's tiers and pools); the cache is bounded all the same.
_CHILD_CACHE_LIMIT = 1024
_request_children: dict[tuple[str, str, str, str], Counter] = {}
_duration_children: dict[str, Histogram] = {}


def observe_admission(webhook: str, outcome: str, tier: str, pool: str, seconds: float) -> None:
    """Count one answered review and record how long it took."""
    key = (webhook, outcome, tier, pool)
    counter = _request_children.get(key)
    if counter is None:
        counter = ADMISSION_REQUESTS.labels(*key)
        if len(_request_children) < _CHILD_CACHE_LIMIT:
            _request_children[key] = counter
    counter.inc()
    histogram = _duration_children.get(webhook)
    if histogram is None:
        histogram = _duration_children[webhook] = ADMISSION_DURATION.labels(webhook)
    histogram.observe(seconds)


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
