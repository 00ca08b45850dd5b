"""`ProfileWriter`: folds finished runs into TaskProfiles, on the one replica holding the Lease.

One round (`run_once`, every couple of seconds, in a worker thread):

    outcomes (the recorder's queue) ─► Lease held? no: keep the last `hold` seconds of them
        (a new holder picks them up; what the old one already wrote is known by pod uid) ─► stop
    yes ─► per task: Prometheus usage (optional) ─► fold into the profile as the watch has it
       ─► one write: create, or replace on its resourceVersion
          409 (another write came first, or it exists already): read it, fold again (3 tries)
          an unreadable object in the way is replaced by a fresh profile (logged)
    the written object goes into the store at once, so the next round builds on it.

Every other failure is logged and the task's outcomes of this round are dropped: a profile
is a summary, and one lost run does not change what it says much.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson
from kubernetes import client

from podtier.webhook.core.pod import MAIN_CONTAINER
from podtier.webhook.core.profile import TaskKey, TaskProfile
from podtier.webhook.learning.fold import fold, known
from podtier.webhook.learning.outcome import Outcome
from podtier.webhook.learning.profiles import (
    GROUP,
    PLURAL,
    VERSION,
    ProfileError,
    parse_profile,
    profile_object,
)
from podtier.webhook.learning.prometheus import PodRun, PrometheusError, PrometheusUsage
from podtier.webhook.learning.recorder import OutcomeRecorder
from podtier.webhook.learning.watch import ProfileStore
from podtier.webhook.observability.metrics import PROFILE_WRITES
from podtier.webhook.policy import Policy

log = logging.getLogger("podtier.learning")

ATTEMPTS = 3


class Leadership(Protocol):
    def ensure(self) -> bool: ...


@dataclass
class RoundResult:
    leader: bool = False
    written: int = 0  # profiles written
    recorded: int = 0  # runs folded into them
    known: int = 0  # runs the profiles already had
    failed: int = 0  # profiles not written (logged)


class ProfileWriter:
    def __init__(
        self,
        recorder: OutcomeRecorder,
        store: ProfileStore,
        api_client: client.ApiClient,
        lease: Leadership,
        policy: Callable[[], Policy],
        *,
        prometheus: PrometheusUsage | None = None,
        hold: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.recorder = recorder
        self.store = store
        self.api: Any = client.CustomObjectsApi(api_client)  # raw JSON in and out
        self.lease = lease
        self.policy = policy
        self.prometheus = prometheus
        self.hold = hold
        self.clock = clock
        self.wall_clock = wall_clock
        self._held: list[tuple[float, Outcome]] = []
        self._prometheus_failing = False

    def run_once(self) -> RoundResult:
        now = self.clock()
        self._held = [(t, o) for t, o in self._held if now - t <= self.hold]
        self._held += [(now, outcome) for outcome in self.recorder.drain()]
        if not self.lease.ensure():
            return RoundResult(leader=False)
        batch, self._held = [o for _, o in self._held], []
        result = RoundResult(leader=True)
        by_task: dict[TaskKey, list[Outcome]] = {}
        for outcome in batch:
            by_task.setdefault(outcome.instance.key, []).append(outcome)
        policy = self.policy()
        for key, outcomes in by_task.items():
            try:
                self._write(key, [self._with_prometheus(o) for o in outcomes], policy, result)
            except Exception as err:  # noqa: BLE001 - one task's trouble must not stop the rest
                result.failed += 1
                PROFILE_WRITES.labels("error").inc()
                log.warning(
                    "learning: profile of %s/%s/%s not written: %s",
                    key.namespace,
                    key.dag,
                    key.task,
                    _describe(err),
                    extra={"namespace": key.namespace, "dag_id": key.dag, "task_id": key.task},
                )
        return result

    # ------------------------------------------------------------------ one task

    def _write(
        self, key: TaskKey, outcomes: list[Outcome], policy: Policy, result: RoundResult
    ) -> None:
        current = self.store.get(key)
        version = current.resource_version if current is not None else ""
        for _ in range(ATTEMPTS):
            profile, folded = _fold_all(current, outcomes, policy, self.wall_clock())
            if profile is None or not folded:
                result.known += len(outcomes)
                return
            body = profile_object(replace(profile, resource_version=version))
            try:
                if version:
                    response = self.api.replace_namespaced_custom_object(
                        GROUP, VERSION, key.namespace, PLURAL, profile.name, body,
                        _preload_content=False,
                    )  # fmt: skip
                else:
                    response = self.api.create_namespaced_custom_object(
                        GROUP, VERSION, key.namespace, PLURAL, body, _preload_content=False
                    )
            except client.ApiException as err:
                if err.status not in (404, 409):
                    raise
                current, version = self._read(key, profile.name)
                continue
            written = parse_profile(orjson.loads(response.data))
            response.release_conn()
            self.store.put(written)
            result.written += 1
            PROFILE_WRITES.labels("success").inc()
            result.recorded += folded
            result.known += len(outcomes) - folded
            return
        raise RuntimeError(f"still conflicting after {ATTEMPTS} writes")

    def _read(self, key: TaskKey, name: str) -> tuple[TaskProfile | None, str]:
        """The profile as the API server has it now, and its resourceVersion ("" if absent).
        An object that cannot be read is overwritten (its version kept for the write)."""
        try:
            response = self.api.get_namespaced_custom_object(
                GROUP, VERSION, key.namespace, PLURAL, name, _preload_content=False
            )
        except client.ApiException as err:
            if err.status == 404:
                return None, ""
            raise
        raw = orjson.loads(response.data)
        response.release_conn()
        version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        try:
            return parse_profile(raw), version
        except ProfileError as err:
            log.warning(
                "learning: TaskProfile %s/%s is unreadable (%s); writing a fresh one over it",
                key.namespace,
                name,
                err,
            )
            return None, version

    def _with_prometheus(self, outcome: Outcome) -> Outcome:
        if self.prometheus is None:
            return outcome
        namespace, _, pod = outcome.pod.partition("/")
        run = PodRun(namespace, pod, MAIN_CONTAINER, outcome.started_at, outcome.finished_at)
        try:
            usage = self.prometheus.usage(run)
        except PrometheusError as err:
            if not self._prometheus_failing:
                log.warning("learning: %s; using PodMetrics samples where there are any", err)
            self._prometheus_failing = True
            return outcome
        if self._prometheus_failing:
            log.info("learning: Prometheus answers again")
            self._prometheus_failing = False
        return replace(
            outcome,
            memory_peak_bytes=usage.memory_peak_bytes or outcome.memory_peak_bytes,
            cpu_p95_milli=usage.cpu_p95_milli
            if usage.cpu_p95_milli is not None
            else outcome.cpu_p95_milli,
        )


def _fold_all(
    profile: TaskProfile | None, outcomes: Iterable[Outcome], policy: Policy, now: float
) -> tuple[TaskProfile | None, int]:
    """The profile with every outcome it does not know yet, and how many those were."""
    folded = 0
    for outcome in outcomes:
        if known(profile, outcome):
            continue
        profile = fold(profile, outcome, policy, now)
        folded += 1
    return profile, folded


def _describe(err: Exception) -> str:
    if isinstance(err, client.ApiException):
        return f"API server answered {err.status} {err.reason}"
    text = str(err) or type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."
