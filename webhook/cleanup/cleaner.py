"""Rounds of cleanup: pick finished Airflow worker pods from the watch, delete them slowly.

One round (`run_once`), only on the replica holding the Lease:
    candidates (census, no API call) ─► `select.pick`: at most `batch`, oldest first
      ─► for each: a token from the bucket (rate limit) ─► still leader? ─► DELETE with a
          uid precondition (a new pod under the same name is never touched)
    200: deleted (logged, counted) · 404: already gone, done · 409: another pod now, skipped ·
    429: the API server asks to slow down, the round ends · other errors end the round too.

A log line per deletion carries namespace, pod, dag_id, task_id, phase and age: nothing else
of the pod (see `webhook.observability.logs`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client

from podtier.webhook.cleanup.bucket import TokenBucket
from podtier.webhook.cleanup.select import pick
from podtier.webhook.insight.facts import PodFacts
from podtier.webhook.observability.metrics import CLEANUP_DELETED
from podtier.webhook.policy import Policy

log = logging.getLogger("podtier.cleanup")


class Leadership(Protocol):
    def ensure(self) -> bool: ...


class Deleter(Protocol):
    def delete(self, pod: PodFacts) -> str:
        """ "deleted", "gone" (404), "changed" (409: another uid), or "throttled" (429)."""
        ...


class PodDeleter:
    """Deletes through the real client, conditional on the pod's uid."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core: Any = client.CoreV1Api(api_client)  # raw JSON, no models

    def delete(self, pod: PodFacts) -> str:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": pod.uid}}
        try:
            response = self.core.delete_namespaced_pod(
                pod.name, pod.namespace, body=body, _preload_content=False
            )
            response.data  # noqa: B018 - drain it, so the connection goes back to the pool
            response.release_conn()
        except client.ApiException as err:
            outcome = {404: "gone", 409: "changed", 429: "throttled"}.get(err.status or 0)
            if outcome is None:
                raise
            return outcome
        return "deleted"


@dataclass(frozen=True)
class CleanupSettings:
    after: float  # seconds since the pod finished
    rate: float = 10.0  # deletes per second, on average
    burst: int = 10  # deletes at once
    batch: int = 500  # deletes per round at most
    interval: float = 30.0  # seconds between rounds


@dataclass
class RoundResult:
    deleted: list[PodFacts] = field(default_factory=list)
    gone: int = 0
    changed: int = 0
    stopped_by: str = ""  # "", "not leader", "lost lease", "throttled", "stopped", "error"


class Cleaner:
    def __init__(
        self,
        finished: Callable[[], Iterable[PodFacts]],
        policy: Callable[[], Policy],
        deleter: Deleter,
        lease: Leadership,
        settings: CleanupSettings,
        *,
        bucket: TokenBucket | None = None,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.finished = finished
        self.policy = policy
        self.deleter = deleter
        self.lease = lease
        self.settings = settings
        self.bucket = bucket or TokenBucket(settings.rate, settings.burst)
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.stop = threading.Event()
        self._deleted_uids: set[str] = set()  # deleted, not yet seen gone by the watch

    def run_once(self) -> RoundResult:
        result = RoundResult()
        if not self.lease.ensure():
            result.stopped_by = "not leader"
            return result
        pods = list(self.finished())
        self._deleted_uids &= {p.uid for p in pods}
        now = self.wall_clock()
        after = self.settings.after
        for pod in pick(pods, self.policy(), now, after, self.settings.batch, self._deleted_uids):
            if self.stop.is_set():
                result.stopped_by = "stopped"
                break
            self.bucket.take(self.sleep)
            if self.stop.is_set():
                result.stopped_by = "stopped"
                break
            if not self.lease.ensure():
                result.stopped_by = "lost lease"
                break
            try:
                outcome = self.deleter.delete(pod)
            except Exception as err:  # noqa: BLE001 - the next round tries again
                log.warning("cleanup: deleting %s failed: %s", pod.key, _describe(err))
                result.stopped_by = "error"
                break
            if outcome == "throttled":
                result.stopped_by = "throttled"
                break
            self._deleted_uids.add(pod.uid)
            if outcome == "gone":
                result.gone += 1
            elif outcome == "changed":
                result.changed += 1
            else:
                self._record(pod, self.wall_clock())
                result.deleted.append(pod)
        return result

    def _record(self, pod: PodFacts, now: float) -> None:
        CLEANUP_DELETED.labels(pod.phase).inc()
        age = now - pod.finished if pod.finished is not None else 0.0
        log.info(
            "cleanup deleted a finished Airflow pod",
            extra={
                "namespace": pod.namespace,
                "pod": pod.name,
                "dag_id": pod.dag_id,
                "task_id": pod.task_id,
                "phase": pod.phase,
                "age_seconds": round(age),
            },
        )


def _describe(err: Exception) -> str:
    if isinstance(err, client.ApiException):
        return f"API server answered {err.status} {err.reason}"
    text = str(err) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."
