"""Usage of a finished pod from Prometheus (`podtier serve --usage-prometheus URL`).

Two instant queries over the pod's run, against what cAdvisor exports for the `base`
container (labels namespace, pod, container):

    max_over_time(container_memory_working_set_bytes{...}[RUN])           peak working set
    quantile_over_time(0.95, irate(container_cpu_usage_seconds_total{...}[WINDOW])[RUN:STEP])
                                                                          cpu p95, in cores

evaluated at the pod's finish (plus `lag`, so the last scrape is in). RUN is the run time
plus `lag`, at least one WINDOW. `irate` (the rate between the last two scrapes) and not
`rate`: `rate` divides by its whole window, so for a pod that lived a part of it (any short
pod) it reads low; WINDOW only has to hold two scrapes (2 minutes: cAdvisor is scraped every
10 to 60 s). A query that fails or finds nothing gives None: the writer keeps what PodMetrics
sampled, if anything. Label values are quoted as PromQL wants.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3

from podtier.webhook.learning.usage import Usage

log = logging.getLogger("podtier.learning")

MEMORY_METRIC = "container_memory_working_set_bytes"
CPU_METRIC = "container_cpu_usage_seconds_total"


class PrometheusError(Exception):
    pass


@dataclass(frozen=True)
class PodRun:
    namespace: str
    pod: str
    container: str
    started_at: float | None  # Unix seconds
    finished_at: float


class PrometheusUsage:
    def __init__(
        self,
        url: str,
        *,
        window: float = 120.0,
        step: float = 15.0,
        lag: float = 30.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.window = window
        self.step = step
        self.lag = lag
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False
        )

    def usage(self, run: PodRun) -> Usage:
        """The run's memory peak and cpu p95; raises `PrometheusError` when Prometheus does
        not answer (an empty answer is None, not an error)."""
        selector = (
            f'{{namespace="{_quote(run.namespace)}",pod="{_quote(run.pod)}",'
            f'container="{_quote(run.container)}"}}'
        )
        seconds = run.finished_at - run.started_at if run.started_at is not None else 0.0
        span = f"{max(math.ceil(seconds + self.lag), math.ceil(self.window))}s"
        at = run.finished_at + self.lag
        memory = self._scalar(f"max_over_time({MEMORY_METRIC}{selector}[{span}])", at)
        rate = f"irate({CPU_METRIC}{selector}[{_seconds(self.window)}])"
        cpu = self._scalar(
            f"quantile_over_time(0.95, {rate}[{span}:{_seconds(self.step)}])",
            at,
        )
        return Usage(
            memory_peak_bytes=math.ceil(memory) if memory is not None else None,
            cpu_p95_milli=math.ceil(cpu * 1000) if cpu is not None else None,
        )

    def _scalar(self, query: str, at: float) -> float | None:
        try:
            response = self.http.request(
                "GET", f"{self.url}/api/v1/query", fields={"query": query, "time": f"{at:.3f}"}
            )
        except urllib3.exceptions.HTTPError as err:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {err}") from None
        try:
            body: Any = orjson.loads(response.data)
        except orjson.JSONDecodeError:
            body = {}
        if response.status != 200 or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise PrometheusError(
                f"Prometheus at {self.url} answered {response.status}: {error or 'no result'}"
            )
        values = []
        for series in (body.get("data") or {}).get("result") or ():
            try:
                value = float(series["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if math.isfinite(value) and value >= 0:
                values.append(value)
        return max(values) if values else None

    def close(self) -> None:
        self.http.clear()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _seconds(value: float) -> str:
    return f"{max(1, math.ceil(value))}s"
