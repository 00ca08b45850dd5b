"""Several replicas, one cluster: which replica may promise which nodes.

Each replica keeps a `coordination.k8s.io/v1` Lease of its own, `<group>-<pod name>` in its
namespace, labelled `podtier.io/peers: <group>`, and renews it every `duration / 5` seconds.
Every renewal also lists the group's Leases. A peer is live while its Lease record keeps
changing: it counts until `duration` seconds pass, on this replica's own clock, since the record
last changed (as client-go's leader election judges a Lease, so clocks need not agree).

The live peers, sorted by name, split each pool's nodes between them (`ClusterState.set_share`):
replica `i` of `n` promises new placements only on every `n`-th node of each pool, from `i`.
So two replicas never promise the same room in the moment before the watch has shown each the
other's pods; once a pod is seen, every replica counts it wherever it is.

A replica promises nothing (headroom is unknown, the reason says why, and decisions fall back
to the first pool as with a stale watch):
- until it has seen its own Lease in the list twice, `duration / 5` seconds apart, so the
  others have had a renewal's time to see it and shrink their shares first;
- when it is cut off: its last successful renewal is older than `2/3 × duration`, so it stops
  before the others may count it gone (`duration`) and take its nodes.
A replica that leaves (or dies) is dropped by the others `duration` seconds after its last
renewal; until then its nodes are promised by nobody, which wastes room but never overbooks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson
from kubernetes import client

from podtier.webhook.lease import micro_time

log = logging.getLogger("podtier.headroom")

PEERS_LABEL = "podtier.io/peers"


class SharesNodes(Protocol):
    def set_peers(self, share: tuple[int, int] | None, problem: str) -> None: ...


def share_of(me: str, live: Sequence[str]) -> tuple[int, int]:
    """This replica's (index, count) among the live peers (itself included)."""
    members = sorted({*live, me})
    return members.index(me), len(members)


class Membership:
    """Pure bookkeeping of the group's Leases, with the clock passed in."""

    def __init__(self, me: str, duration: float) -> None:
        self.me = me
        self.duration = duration
        self._seen: dict[str, tuple[object, float]] = {}  # peer -> (record, first seen at)
        self._renewed_at: float | None = None
        self._joined_at: float | None = None  # when our own Lease was first listed

    def renewed(self, now: float) -> None:
        self._renewed_at = now

    def observe(self, leases: Mapping[str, object], now: float) -> list[str]:
        """`leases`: holder -> its Lease record (anything that changes on each renewal).
        Returns the live peers, this replica included once it is listed."""
        for holder, record in leases.items():
            seen = self._seen.get(holder)
            if seen is None or seen[0] != record:
                self._seen[holder] = (record, now)
        for holder in set(self._seen) - set(leases):
            del self._seen[holder]
        if self.me in leases and self._joined_at is None:
            self._joined_at = now
        return sorted(h for h, (_, at) in self._seen.items() if now - at < self.duration)

    def problem(self, now: float, settle: float) -> str:
        """Why this replica may not promise capacity now; "" when it may."""
        if self._renewed_at is None or now - self._renewed_at >= self.duration * 2 / 3:
            return (
                "this replica cannot renew its peer Lease, so it may not promise capacity "
                "other replicas could take over"
            )
        if self._joined_at is None or now - self._joined_at < settle:
            return "this replica is still agreeing with its peers on a share of the nodes"
        return ""


class PeerLeases:
    """The I/O: renew our Lease, list the group's (raw JSON, as the rest of podtier reads)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        group: str,
        namespace: str,
        identity: str,
        duration: float = 15.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.api: Any = client.CoordinationV1Api(api_client)
        self.group = group
        self.namespace = namespace
        self.identity = identity
        self.name = f"{group}-{identity}"[:253]
        self.duration = duration
        self.wall_clock = wall_clock

    def renew(self) -> None:
        """Create or renew our Lease; raises `client.ApiException` on failure."""
        stamp = micro_time(self.wall_clock())
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": stamp,
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "labels": {PEERS_LABEL: self.group}},
            "spec": spec,
        }
        try:
            self.api.patch_namespaced_lease(self.name, self.namespace, body={"spec": spec})
        except client.ApiException as err:
            if err.status != 404:
                raise
            self.api.create_namespaced_lease(self.namespace, body=body)

    def list(self) -> dict[str, object]:
        """holder -> (renewTime, resourceVersion) of every Lease in the group."""
        response = self.api.list_namespaced_lease(
            self.namespace, label_selector=f"{PEERS_LABEL}={self.group}", _preload_content=False
        )
        items = orjson.loads(response.data).get("items") or []
        out: dict[str, object] = {}
        for item in items:
            spec = item.get("spec") or {}
            holder = spec.get("holderIdentity")
            if isinstance(holder, str) and holder:
                version = (item.get("metadata") or {}).get("resourceVersion")
                out[holder] = (spec.get("renewTime"), version)
        return out

    def release(self) -> None:
        try:
            self.api.delete_namespaced_lease(self.name, self.namespace)
        except Exception as err:  # noqa: BLE001 - best effort on the way out
            log.debug("peers: could not delete our lease: %s", err)


def peers_job(
    headroom: SharesNodes,
    configuration: client.Configuration,
    *,
    group: str,
    namespace: str,
    identity: str,
    duration: float = 15.0,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[object], Callable[[], Awaitable[None]]]:
    """A `ServeSetup.background` factory: keep our Lease, and the node share, up to date."""
    interval = duration / 5

    def make(_state: object) -> Callable[[], Awaitable[None]]:
        api_client = client.ApiClient(configuration)
        leases = PeerLeases(
            api_client, group=group, namespace=namespace, identity=identity, duration=duration
        )
        membership = Membership(identity, duration)
        share = (0, 1)  # until the first list: ours alone, but not promised (see `problem`)

        def tick() -> None:
            nonlocal share
            now = clock()
            try:
                leases.renew()
                membership.renewed(now)
                share = share_of(identity, membership.observe(leases.list(), now))
            except Exception as err:  # noqa: BLE001 - said in the status, tried again
                log.warning("peers: %s", err)
            headroom.set_peers(share, membership.problem(now, settle=2 * interval))

        async def run() -> None:
            log.info("peers on", extra={"group": f"{namespace}/{group}", "identity": identity})
            try:
                while True:
                    await asyncio.to_thread(tick)
                    await asyncio.sleep(interval)
            finally:
                await asyncio.to_thread(leases.release)
                api_client.close()  # type: ignore[no-untyped-call]

        return run

    return make
