"""podtier's Prometheus metrics, declared once. Every module that counts something imports
its metric from here, so names and labels stay in one place."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ADMISSION_REQUESTS = Counter(
    "podtier_admission_requests",
    "Admission reviews answered, by webhook, outcome, tier and pool.",
    ["webhook", "outcome", "tier", "pool"],
)

ADMISSION_DURATION = Histogram(
    "podtier_admission_duration_seconds",
    "Time to answer one admission review, from decoded body to encoded response.",
    ["webhook"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
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
