"""Per-pool utilization U = used / requested, from the `metrics.k8s.io` API when it exists.

The API is discovered (`GET /apis`, as kubectl does); while it is absent, or answers 404 or
503 (metrics-server registered but down), there is no reading at all and the metric is
absent, not zero. Discovery is retried every `rediscover_every` polls. When it exists, one
list of PodMetrics per poll (raw JSON, orjson) is matched against the census's Running
Airflow pods: only pods with both a usage sample and requests count, on both sides.

Other users of the same samples (learning's per-pod peaks) subscribe as a `UsageSink`: each
poll's PodMetrics items are handed to them, and they hear when the API is not there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
from kubernetes import client

from podtier.webhook.core.quantity import QuantityError, to_milli
from podtier.webhook.insight.census import PodCensus, PoolUsage
from podtier.webhook.insight.listing import ListError, list_pages

log = logging.getLogger("podtier.insight")

GROUP = "metrics.k8s.io"
Ratios = dict[str, dict[str, float]]


def ratios(by_pool: Mapping[str, PoolUsage]) -> Ratios:
    """used / requested per pool and resource, where something was requested."""
    out: Ratios = {}
    for pool, usage in by_pool.items():
        for resource, requested in usage.requested.items():
            if requested > 0:
                out.setdefault(pool, {})[resource] = usage.used.get(resource, 0) / requested
    return out


def pod_usage(items: list[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """PodMetrics items to (cpu, memory) milli-units by pod key, summed over containers."""
    usage: dict[str, tuple[int, int]] = {}
    for item in items:
        meta = item.get("metadata") or {}
        cpu = memory = 0
        try:
            for container in item.get("containers") or ():
                values = container.get("usage") or {}
                cpu += to_milli(values.get("cpu", "0"))
                memory += to_milli(values.get("memory", "0"))
        except (QuantityError, AttributeError):
            continue
        usage[f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"] = (cpu, memory)
    return usage


def metrics_version(apis: Any) -> str | None:
    """The served version of metrics.k8s.io (asked of `client.ApisApi`), or None when the
    cluster has no such API."""
    response = apis.get_api_versions(_preload_content=False)
    groups = orjson.loads(response.data)
    response.release_conn()
    for group in groups.get("groups") or ():
        if group.get("name") == GROUP:
            preferred = (group.get("preferredVersion") or {}).get("version")
            versions = [v.get("version") for v in group.get("versions") or ()]
            return str(preferred or (versions[0] if versions else "")) or None
    return None


class UsageSink(Protocol):
    def observe(self, items: list[Mapping[str, Any]]) -> None:
        """One poll's PodMetrics items (called from the poller's thread)."""
        ...

    def unavailable(self, why: str) -> None:
        """The metrics API is absent or down: no samples this poll."""
        ...


class UtilizationPoller:
    def __init__(
        self,
        api_client: client.ApiClient,
        census: PodCensus,
        *,
        rediscover_every: int = 10,
    ) -> None:
        self.sinks: list[UsageSink] = []
        self.apis: Any = client.ApisApi(api_client)  # raw JSON, no models
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.census = census
        self.rediscover_every = rediscover_every
        self.version: str | None = None
        self._readings: Ratios | None = None
        self._polls = 0

    def current(self) -> Ratios | None:
        """The last reading, or None while the metrics API is absent."""
        return self._readings

    def discover(self) -> str | None:
        return metrics_version(self.apis)

    def poll_once(self) -> None:
        if self.version is None and self._polls % self.rediscover_every == 0:
            self.version = self.discover()
            if self.version is not None:
                log.info("metrics.k8s.io %s found: pool utilization on", self.version)
        self._polls += 1
        if self.version is None:
            self._readings = None
            self._tell_unavailable(f"the API server serves no {GROUP} API")
            return
        try:
            items = self._list()
        except ListError as err:
            if err.status in (404, 503):
                log.info("metrics.k8s.io answered %s: pool utilization off", err.status)
                self.version = None
                self._readings = None
                self._tell_unavailable(f"{GROUP} answered {err.status}")
                return
            self._tell_unavailable(str(err))
            raise
        for sink in self.sinks:
            sink.observe(items)
        self._readings = ratios(self.census.usage_by_pool(pod_usage(items)))

    def _tell_unavailable(self, why: str) -> None:
        for sink in self.sinks:
            sink.unavailable(why)

    def _list(self) -> list[Mapping[str, Any]]:
        call = self.custom.list_cluster_custom_object
        pages = list_pages(call, GROUP, self.version, "pods", what="PodMetrics")
        return [item for page in pages for item in page]
