"""Per-pod usage from `metrics.k8s.io` PodMetrics, sampled by insight's utilization poller.

For each running Airflow pod the recorder tracks, every poll's sample of the `base`
container adds to its memory peak (working set, what metrics-server reports and what the
kernel's OOM killer judges) and to a small histogram of its cpu usage, from which the pod's
cpu p95 is read when it finishes. Pods are dropped when taken (finished) or forgotten
(deleted). When the metrics API is absent, the recorder records outcomes only, and this says
so once in the log (and again once it comes back).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podtier.webhook.core.pod import MAIN_CONTAINER
from podtier.webhook.core.profile import MEMORY_UNIT
from podtier.webhook.core.quantity import QuantityError, to_milli
from podtier.webhook.learning import decay

log = logging.getLogger("podtier.learning")


@dataclass
class _Pod:
    memory_peak: int = 0  # bytes
    cpu: dict[int, int] = field(default_factory=dict)  # cpu bucket -> samples


@dataclass(frozen=True)
class Usage:
    memory_peak_bytes: int | None
    cpu_p95_milli: int | None


class UsagePeaks:
    """A `UsageSink` for `insight.utilization.UtilizationPoller`."""

    def __init__(self, tracked: Callable[[str], bool]) -> None:
        """`tracked(pod key)`: whether the pod is a running Airflow pod worth sampling."""
        self.tracked = tracked
        self._lock = threading.Lock()
        self._pods: dict[str, _Pod] = {}
        self.available: bool | None = None  # None until the poller said either way

    def observe(self, items: list[Mapping[str, Any]]) -> None:
        """One poll's PodMetrics items."""
        self._available(True, "")
        for item in items:
            meta = item.get("metadata") or {}
            key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
            if not self.tracked(key):
                continue
            for container in item.get("containers") or ():
                if not isinstance(container, dict) or container.get("name") != MAIN_CONTAINER:
                    continue
                usage = container.get("usage") or {}
                try:
                    memory = to_milli(usage.get("memory", "0")) // MEMORY_UNIT
                    cpu = to_milli(usage.get("cpu", "0"))
                except (QuantityError, AttributeError):
                    continue
                with self._lock:
                    pod = self._pods.setdefault(key, _Pod())
                    pod.memory_peak = max(pod.memory_peak, memory)
                    index = decay.CPU.index(cpu)
                    pod.cpu[index] = pod.cpu.get(index, 0) + 1

    def unavailable(self, why: str) -> None:
        self._available(False, why)

    def take(self, key: str) -> Usage | None:
        """The finished pod's usage (None when never sampled); the pod is forgotten."""
        with self._lock:
            pod = self._pods.pop(key, None)
        if pod is None:
            return None
        total = sum(pod.cpu.values())
        running, p95 = 0, None
        for index in sorted(pod.cpu):
            running += pod.cpu[index]
            if running >= 0.95 * total:
                p95 = decay.CPU.end(index)
                break
        return Usage(pod.memory_peak or None, p95)

    def forget(self, key: str) -> None:
        with self._lock:
            self._pods.pop(key, None)

    def _available(self, available: bool, why: str) -> None:
        if available == self.available:
            return
        self.available = available
        if available:
            log.info("learning: metrics.k8s.io answers; sampling each Airflow pod's usage")
        else:
            log.warning(
                "learning: no usage from metrics.k8s.io (%s); recording outcomes only "
                "(exit code, OOM kills, run time), no memory peak or cpu p95",
                why,
            )
