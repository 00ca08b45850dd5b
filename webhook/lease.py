"""One replica at a time: leader election through a `coordination.k8s.io/v1` Lease.

Used by the jobs only one replica may run: cleanup (deleting finished pods) and learning
(writing TaskProfiles), each with a Lease of its own; `purpose` names the job in log lines.

The rules are client-go's (`leaderelection`): the Lease names its holder (`holderIdentity`,
this pod's name), how long a claim lasts (`leaseDurationSeconds`) and when it was last
renewed (`renewTime`). A replica takes the Lease when it does not exist, when it holds no one,
or when its record has not changed for `leaseDurationSeconds` as measured on the replica's
*own* clock since it last saw the record change (so clocks need not agree). Every write is
an update on the resourceVersion just read: of two replicas racing, one gets 409 Conflict and
stays a follower.

A holder counts itself leader only until `renew_deadline` (2/3 of the duration by default)
after its last successful renewal, so it stops acting before anyone else may take over.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kubernetes import client

log = logging.getLogger("podtier.lease")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def replica_identity() -> str:
    """This replica's name in a Lease: $POD_NAME (the chart sets it), else the host name."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def replica_namespace() -> str:
    """Where the Leases live: $POD_NAMESPACE, else the service account's namespace."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def micro_time(unix: float) -> str:
    """A `metav1.MicroTime` as the API server writes it."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderLease:
    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        duration: float = 15.0,
        renew_deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        purpose: str = "cleanup",
    ) -> None:
        self.purpose = purpose
        self.api: Any = client.CoordinationV1Api(api_client)  # raw JSON in and out
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline if renew_deadline is not None else duration * 2 / 3
        self.clock = clock
        self.wall_clock = wall_clock
        self._renewed_at: float | None = None  # local clock, last successful write as holder
        self._observed: tuple[Any, ...] | None = None  # the record as last read
        self._observed_at = 0.0  # local clock, when that record was first seen

    def is_leader(self) -> bool:
        return (
            self._renewed_at is not None and self.clock() < self._renewed_at + self.renew_deadline
        )

    def ensure(self) -> bool:
        """Leader now? Renews the claim when a third of the deadline has passed since the last
        renewal, or tries to take the Lease when not the holder."""
        renewed = self._renewed_at
        if (
            self.is_leader()
            and renewed is not None
            and self.clock() - renewed < self.renew_deadline / 3
        ):
            return True
        return self.try_acquire_or_renew()

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = self._read()
        except client.ApiException as err:
            if err.status != 404:
                return self._failed(err)
            return self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            self._renewed_at = None
            return False  # held by another replica, and still fresh
        stamp = micro_time(self.wall_clock())
        taking_over = holder != self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (1 if taking_over else 0)
        lease["spec"] = {
            **spec,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "acquireTime": stamp if taking_over else spec.get("acquireTime") or stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }
        try:
            _drain(
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, body=lease, _preload_content=False
                )
            )
        except client.ApiException as err:
            return self._failed(err)
        if taking_over:
            log.info(
                "%s: this replica now holds the lease",
                self.purpose,
                extra={
                    "lease": f"{self.namespace}/{self.name}",
                    "holder": self.identity,
                    "previous": holder,
                },
            )
        self._observed = (self.identity, stamp, transitions)
        self._observed_at = now
        self._renewed_at = now
        return True

    def release(self) -> None:
        """Give the Lease up (holder emptied), so another replica takes over at once."""
        if self._renewed_at is None:
            return
        self._renewed_at = None
        try:
            lease = self._read()
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}
            _drain(
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, body=lease, _preload_content=False
                )
            )
        except client.ApiException as err:
            log.warning(
                "%s: could not release the lease: %s %s", self.purpose, err.status, err.reason
            )

    def _read(self) -> dict[str, Any]:
        response = self.api.read_namespaced_lease(self.name, self.namespace, _preload_content=False)
        data: dict[str, Any] = orjson.loads(_drain(response))
        return data

    def _create(self, now: float) -> bool:
        stamp = micro_time(self.wall_clock())
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            _drain(
                self.api.create_namespaced_lease(self.namespace, body=body, _preload_content=False)
            )
        except client.ApiException as err:
            return self._failed(err)  # 409: another replica created it first
        log.info(
            "%s: this replica now holds the lease",
            self.purpose,
            extra={"lease": f"{self.namespace}/{self.name}", "holder": self.identity},
        )
        self._observed = (self.identity, stamp, 0)
        self._observed_at = now
        self._renewed_at = now
        return True

    def _failed(self, err: client.ApiException) -> bool:
        if err.status != 409:
            log.warning(
                "%s: lease %s/%s: API server answered %s %s",
                self.purpose,
                self.namespace,
                self.name,
                err.status,
                err.reason,
            )
        # Keep leading only while the last renewal is within the deadline.
        return self.is_leader()


def _drain(response: Any) -> bytes:
    """Read a raw response to the end and hand its connection back to the pool."""
    data: bytes = response.data
    response.release_conn()
    return data
