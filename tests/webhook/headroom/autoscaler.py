"""A stand-in for cluster-autoscaler on the test control plane: when pods pend for a pool (bound
to no node, their nodeSelector the pool's), it adds a Ready node of the pool's shape `delay`
seconds later, up to `max_nodes` nodes in the pool. It never removes nodes.

    with PoolAutoscaler(plane, "airflow", {"node-type": "compute-optimized"}, ...) as scaler:
        ...
    scaler.added  # the nodes it made, in order
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tests.controlplane import ControlPlane


class PoolAutoscaler:
    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        labels: Mapping[str, str],
        taints: Sequence[Mapping[str, str]],
        *,
        prefix: str,
        cpu: str,
        memory: str,
        max_nodes: int,
        delay: float,
    ) -> None:
        self.plane = plane
        self.namespace = namespace
        self.labels = dict(labels)
        self.taints = list(taints)
        self.prefix, self.cpu, self.memory = prefix, cpu, memory
        self.max_nodes = max_nodes
        self.delay = delay
        self.added: list[str] = []
        self.pending_seen: dict[str, float] = {}  # pod -> when first seen pending for the pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pool-autoscaler", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> PoolAutoscaler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.error is not None:
            raise self.error

    def _pool_nodes(self) -> list[str]:
        selector = ",".join(f"{k}={v}" for k, v in self.labels.items())
        return [n.metadata.name for n in self.plane.core.list_node(label_selector=selector).items]

    def _pending(self) -> list[Any]:
        pods = self.plane.core.list_namespaced_pod(self.namespace).items
        return [
            pod
            for pod in pods
            if not pod.spec.node_name
            and pod.status.phase == "Pending"
            and self.labels.items() <= (pod.spec.node_selector or {}).items()
        ]

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                pending = self._pending()
                for pod in pending:
                    self.pending_seen.setdefault(pod.metadata.name, now)
                due = [p for p in pending if now - self.pending_seen[p.metadata.name] >= self.delay]
                nodes = self._pool_nodes()
                if due and len(nodes) < self.max_nodes:
                    name = f"{self.prefix}-{len(nodes)}"
                    self.plane.add_node(
                        name, self.labels, self.taints, cpu=self.cpu, memory=self.memory
                    )
                    self.added.append(name)
                    for pod in due:  # a node for these: they start a new delay if still pending
                        self.pending_seen[pod.metadata.name] = now
                self._stop.wait(0.2)
        except BaseException as err:  # noqa: BLE001 - reported by __exit__
            self.error = err
