"""Waits for a node: p50/p95 per pool, and pods waiting over time (pure).

A pod waits from its creation to its binding (`PodRun.bound`), or to now while it waits.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from podtier.webhook.core.prices import named_first
from podtier.webhook.report.facts import PodRun

SERIES_POINTS = 240


@dataclass(frozen=True, slots=True)
class Pending:
    """A pool's waits for a node: pods bound in the window, and pods still waiting (counted
    with their wait so far)."""

    pods: int
    waiting_now: int
    p50_seconds: float | None
    p95_seconds: float | None


@dataclass(frozen=True, slots=True)
class PendingSeries:
    """Pods waiting for a node at each of `times`, per pool (from their creation and binding
    times)."""

    times: list[float]
    by_pool: dict[str, list[int]]


def wait_interval(pod: PodRun) -> tuple[float, float | None] | None:
    """When the pod waited for a node: (created, bound), or (created, None) while it waits."""
    if pod.created is None:
        return None
    if pod.waiting:
        return pod.created, None
    if pod.bound is not None:
        return pod.created, max(pod.created, pod.bound)
    return None


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile, interpolated between ranks (numpy's default)."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def pending_series(
    intervals: Mapping[str, list[tuple[float, float | None]]], start: float, end: float
) -> PendingSeries | None:
    """Pods waiting at `SERIES_POINTS` moments from `start` to `end`: those created at or
    before the moment and bound after it (or not yet). None when no pod waited at all."""
    if end <= start or not any(
        b is None or b > a for spans in intervals.values() for a, b in spans
    ):
        return None
    step = (end - start) / (SERIES_POINTS - 1)
    times = [start + i * step for i in range(SERIES_POINTS)]
    by_pool = {}
    for pool, spans in sorted(intervals.items(), key=lambda kv: named_first(kv[0])):
        begins = sorted(a for a, _ in spans)
        ends = sorted(b for _, b in spans if b is not None)
        by_pool[pool] = [
            bisect.bisect_right(begins, t) - bisect.bisect_right(ends, t) for t in times
        ]
    return PendingSeries(times, by_pool)
