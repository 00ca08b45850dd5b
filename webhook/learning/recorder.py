"""`OutcomeRecorder`: catches each Airflow pod's end from the pod watch podtier already runs.

It is a pod listener of the headroom tracker (`ClusterHeadroom.add_pod_listener`), so it sees
every pod event, in order, with no API call of its own. Airflow deletes finished pods quickly,
so the end is caught from the first event that shows the base container terminated (a
MODIFIED, or the DELETED itself when that was the first), never from a later read. Each pod is
recorded once (by uid), and the outcome goes to a bounded queue that the profile writer
drains (and each is told to `on_end` at once: decisions see the run before it is written);
when the queue is full the oldest outcome is dropped (and counted).

A pod first seen already finished (the first list after a start) is marked `seen_finished`:
the writer records it only when its profile does not have it yet.

Called under the tracker's lock: each event costs a few dict lookups, and parsing happens
only once per pod, when it ends.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.insight.facts import is_airflow
from podtier.webhook.learning.outcome import Outcome, base_terminated, outcome_of
from podtier.webhook.learning.usage import UsagePeaks
from podtier.webhook.policy import Policy


class OutcomeRecorder:
    def __init__(
        self,
        policy: Callable[[], Policy],
        *,
        capacity: int = 10_000,
        on_end: Callable[[Outcome], None] | None = None,
        seal: EscalationSeal | None = None,
    ) -> None:
        """`on_end`: told each outcome as it is queued (the profile store, so that decisions
        see the run at once, before the writer writes it). `seal`: an escalation counts only
        when its seal verifies (`outcome_of`)."""
        self.policy = policy
        self.seal = seal
        self.on_end = on_end
        self.usage = UsagePeaks(self.is_running)
        self._running: set[str] = set()  # Airflow pods seen with the base container not ended
        self._recorded: dict[str, str] = {}  # pod key -> uid of the finished pod recorded
        self._queue: deque[Outcome] = deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.dropped = 0

    def is_running(self, key: str) -> bool:
        return key in self._running

    def __call__(self, event_type: str, key: str, raw: Mapping[str, Any] | None) -> None:
        if raw is None:  # a relist no longer has it
            self._forget(key)
            return
        terminated = base_terminated(raw)
        if terminated is None:
            meta = raw.get("metadata") or {}
            labels = meta.get("labels")
            if (
                event_type != "DELETED"
                and isinstance(labels, dict)
                and is_airflow(labels, self.policy().airflow_pods)
            ):
                self._running.add(key)
            else:
                self._forget(key)
            return
        uid = str((raw.get("metadata") or {}).get("uid") or "")
        if key in self._recorded and self._recorded[key] == uid:
            if event_type == "DELETED":
                self._forget(key)
            return
        seen_running = key in self._running
        self._running.discard(key)
        if event_type == "DELETED":
            self._recorded.pop(key, None)
        else:
            self._recorded[key] = uid
        outcome = outcome_of(raw, self.policy(), self.seal)
        usage = self.usage.take(key)
        if outcome is None:
            return
        if usage is not None:
            outcome = replace(
                outcome,
                memory_peak_bytes=usage.memory_peak_bytes,
                cpu_p95_milli=usage.cpu_p95_milli,
            )
        if not seen_running:
            outcome = replace(outcome, seen_finished=True)
        if self.on_end is not None:
            self.on_end(outcome)
        with self._lock:
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(outcome)

    def drain(self) -> list[Outcome]:
        """Every outcome queued so far, oldest first."""
        with self._lock:
            out = list(self._queue)
            self._queue.clear()
        return out

    def _forget(self, key: str) -> None:
        self._running.discard(key)
        self._recorded.pop(key, None)
        self.usage.forget(key)
