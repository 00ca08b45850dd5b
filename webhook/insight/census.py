"""`PodCensus`: Airflow pods counted by phase, tier, pool and namespace, kept per watch event.

It is a pod listener of the headroom tracker (`ClusterHeadroom.add_pod_listener`), so it sees
every pod event of the one list+watch podtier already runs, and makes no API call of its own.
Each event costs O(1): the pod's previous entry is uncounted and its new one counted.

It keeps, per Airflow pod: its count slot (phase, tier, pool, namespace); whether it waits
unbound for a pool (P(t) of the scaling signal); whether its wait for a node was measured; its
requests while Running (for utilization); and, for Succeeded and Failed pods, their facts
(cleanup candidates).

The wait for a node (`podtier_airflow_pending_seconds`) is measured once per pod, when it is
first seen bound: from `metadata.creationTimestamp` to the `PodScheduled` condition's
`lastTransitionTime`. It is measured for pods seen waiting before, or bound after the census
started, so a restart does not replay old waits. A pod bound without that condition (seen
waiting first) is measured to the moment its binding was seen.

The policy can reload: Airflow-ness (`airflowPods`) and pools by nodeSelector are read from
the current policy at each event. A pod keeps its classification until its next event (or
the next relist); cleanup re-checks its candidates against the current policy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from podtier.webhook.core.resources import ResourceError
from podtier.webhook.headroom.records import spec_requests
from podtier.webhook.insight.facts import (
    FINISHED_PHASES,
    PodFacts,
    PodPlace,
    airflow_facts,
    airflow_place,
    parse_time,
    scheduled_at,
)
from podtier.webhook.observability.metrics import AIRFLOW_PENDING_SECONDS
from podtier.webhook.policy import Policy

Slot = tuple[str, str, str, str]  # (phase, tier, pool, namespace)
Observe = Callable[[str, str, float], None]  # (tier, pool, seconds waited)
_SHARED_LIMIT = 50_000  # distinct entries kept for sharing (each pod keeps its own anyway)


class _Entry(NamedTuple):
    slot: Slot
    waits_in: str | None  # the pool it waits unbound for (pool may be ""), or None
    seen_waiting: bool
    wait_measured: bool
    requests: tuple[int, int] | None  # (cpu, memory) milli-units while Running


class PoolUsage(NamedTuple):
    """Summed over the pool's Running Airflow pods that have a usage sample."""

    used: Mapping[str, int]  # resource -> milli-units
    requested: Mapping[str, int]


def _observe_wait(tier: str, pool: str, seconds: float) -> None:
    AIRFLOW_PENDING_SECONDS.labels(tier, pool).observe(seconds)


class PodCensus:
    def __init__(
        self,
        policy: Callable[[], Policy],
        *,
        wall_clock: Callable[[], float] = time.time,
        observe_wait: Observe = _observe_wait,
        requests_of: Callable[[str], Mapping[str, int] | None] | None = None,
    ) -> None:
        """`requests_of`: a pod's effective requests by key, as the headroom state has just
        counted them (the census is told each event after the state took it); without it, the
        census reads them from the pod."""
        self.policy = policy
        self.wall_clock = wall_clock
        self.observe_wait = observe_wait
        self.requests_of = requests_of
        self.started = wall_clock()
        self._lock = threading.Lock()
        self._pods: dict[str, _Entry] = {}
        self._counts: dict[Slot, int] = {}
        # Entries are values, and few differ (slot, wait flags, requests): one object per
        # distinct entry, shared by every pod that has it, instead of one per pod (at 150,000
        # pods, `bench/headroom_bench.py`'s steady RSS went from 219 to ~150 MB).
        self._shared: dict[_Entry, _Entry] = {}
        self._waiting: dict[str, int] = {}
        self._waiting_since: dict[str, tuple[str, float]] = {}  # key -> (pool, created)
        self._requested: dict[str, list[int]] = {}  # pool -> [cpu, memory] of Running pods
        self._finished: dict[str, PodFacts] = {}

    # ------------------------------------------------------------------ the listener

    def __call__(self, event_type: str, key: str, raw: Mapping[str, Any] | None) -> None:
        place = facts = None
        if event_type != "DELETED" and raw is not None:
            policy = self.policy()
            place = airflow_place(raw, policy)
            if place is not None and place.phase in FINISHED_PHASES:
                facts = airflow_facts(raw, policy)  # kept whole for cleanup
        with self._lock:
            old = self._pods.pop(key, None)
            if old is not None:
                self._count(old, -1)
            self._finished.pop(key, None)
            since = self._waiting_since.pop(key, None)
            if place is None or raw is None:
                return
            entry = self._entry(key, place, raw, old)
            if entry.waits_in is not None:
                created = since[1] if since else self._created(raw)
                self._waiting_since[key] = (entry.waits_in, created)
            self._pods[key] = entry
            self._count(entry, +1)
            if facts is not None:
                self._finished[key] = facts

    def _entry(
        self, key: str, place: PodPlace, raw: Mapping[str, Any], old: _Entry | None
    ) -> _Entry:
        waiting = place.phase == "Pending" and not place.bound
        seen_waiting = waiting or (old is not None and old.seen_waiting)
        measured = old is not None and old.wait_measured
        if place.bound and not measured:
            waited = self._waited(raw, old is not None and old.seen_waiting)
            if waited is not None:
                self.observe_wait(place.tier, place.pool, waited)
            measured = True
        requests = None
        if place.phase == "Running" and place.bound:
            requests = old.requests if old is not None else None
            requests = requests or self._requests(key, raw)
        entry = _Entry(
            slot=(place.phase, place.tier, place.pool, place.namespace),
            waits_in=place.pool if waiting else None,
            seen_waiting=seen_waiting,
            wait_measured=measured,
            requests=requests,
        )
        if len(self._shared) >= _SHARED_LIMIT:  # many distinct requests over a long life
            self._shared.clear()
        return self._shared.setdefault(entry, entry)

    def _waited(self, raw: Mapping[str, Any], seen_waiting: bool) -> float | None:
        """The wait of a pod seen bound for the first time, if it is to be measured. The times
        are read only then (the scheduled one first: most pods of a first list are not)."""
        scheduled = scheduled_at(raw.get("status") or {})
        if scheduled is None and not seen_waiting:
            return None
        if scheduled is not None and not seen_waiting and scheduled < self.started:
            return None
        created = parse_time((raw.get("metadata") or {}).get("creationTimestamp"))
        if created is None:
            return None
        return max(0.0, (self.wall_clock() if scheduled is None else scheduled) - created)

    def _created(self, raw: Mapping[str, Any]) -> float:
        """When a waiting pod was created (now when it says not: its wait counts from here)."""
        created = parse_time((raw.get("metadata") or {}).get("creationTimestamp"))
        return self.wall_clock() if created is None else created

    def _requests(self, key: str, raw: Mapping[str, Any]) -> tuple[int, int] | None:
        requests = self.requests_of(key) if self.requests_of is not None else None
        if requests is None:
            try:
                requests = spec_requests(raw.get("spec") or {})
            except ResourceError:
                return None
        return requests.get("cpu", 0), requests.get("memory", 0)

    def _count(self, entry: _Entry, sign: int) -> None:
        self._counts[entry.slot] = self._counts.get(entry.slot, 0) + sign
        if entry.requests is not None:
            requested = self._requested.setdefault(entry.slot[2], [0, 0])
            requested[0] += sign * entry.requests[0]
            requested[1] += sign * entry.requests[1]
        if entry.waits_in is not None:
            self._waiting[entry.waits_in] = self._waiting.get(entry.waits_in, 0) + sign

    # ------------------------------------------------------------------ readings

    def counts(self) -> dict[Slot, int]:
        """Every (phase, tier, pool, namespace) seen so far and its count now (0 kept, so a
        series drops to zero rather than vanishing)."""
        with self._lock:
            return dict(self._counts)

    def pending_by_pool(self) -> dict[str, int]:
        """P per pool: Airflow pods Pending and not yet bound ("" for pods of no pool)."""
        with self._lock:
            return {pool: n for pool, n in self._waiting.items() if n}

    def oldest_pending_by_pool(self) -> dict[str, float]:
        """Per pool with unbound Pending Airflow pods, the seconds its oldest one has waited
        since its creation."""
        now = self.wall_clock()
        oldest: dict[str, float] = {}
        with self._lock:
            for pool, created in self._waiting_since.values():
                oldest[pool] = min(oldest.get(pool, created), created)
        return {pool: max(0.0, now - created) for pool, created in oldest.items()}

    def requested_by_pool(self) -> dict[str, tuple[int, int]]:
        """Per pool, the (cpu, memory) milli-units requested by its Running Airflow pods."""
        with self._lock:
            return {pool: (r[0], r[1]) for pool, r in self._requested.items() if r[0] or r[1]}

    def finished(self) -> list[PodFacts]:
        """Succeeded and Failed Airflow pods, as last seen."""
        with self._lock:
            return list(self._finished.values())

    def usage_by_pool(self, usage: Mapping[str, tuple[int, int]]) -> dict[str, PoolUsage]:
        """Per pool, usage (cpu, memory by pod key) against requests, over the Running Airflow
        pods that have both."""
        used: dict[str, list[int]] = {}
        requested: dict[str, list[int]] = {}
        with self._lock:
            for key, (cpu, memory) in usage.items():
                entry = self._pods.get(key)
                if entry is None or entry.requests is None:
                    continue
                pool = entry.slot[2]
                u = used.setdefault(pool, [0, 0])
                r = requested.setdefault(pool, [0, 0])
                u[0] += cpu
                u[1] += memory
                r[0] += entry.requests[0]
                r[1] += entry.requests[1]
        return {
            pool: PoolUsage(
                {"cpu": used[pool][0], "memory": used[pool][1]},
                {"cpu": requested[pool][0], "memory": requested[pool][1]},
            )
            for pool in used
        }
