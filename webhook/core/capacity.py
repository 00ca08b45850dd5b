"""What the decision core may ask of the cluster's headroom, and the edge's side of it.

The decision core (`webhook.core.decide`) sees a `CapacityView`: whether headroom is known, and
"which node in the nodes matching this selector, whose taints these tolerations tolerate,
has at least these requests free?". The tracker that watches the cluster (or reads a
`kubectl get -o json` dump) implements `Headroom`: it hands out views inside a transaction,
so that the fit check and the reservation it leads to are one atomic step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from podtier.webhook.core.profile import TaskKey


@dataclass(frozen=True)
class HeadroomStatus:
    """`known` is False while podtier cannot trust its picture; `reason` says why, for people."""

    known: bool
    reason: str


# How many pods of one size `find_elsewhere` counts at most: beyond it, room is plenty.
ROOM_COUNT_LIMIT = 8


@dataclass(frozen=True)
class Borrowed:
    """Room outside this replica's share (`CapacityView.find_elsewhere`)."""

    node: str
    room: int  # pods of the asked requests the pool's nodes could take, up to ROOM_COUNT_LIMIT


@dataclass(frozen=True)
class RunningPod:
    """A pod bound to a node of a pool, as `CapacityView.outlook` tells it."""

    node: str
    task: TaskKey | None  # the Airflow task it runs; None for any other pod
    started_at: float | None  # Unix seconds (status.startTime); None when not known
    requests: Mapping[str, int]  # milli-units, as the scheduler counts them


@dataclass(frozen=True)
class PoolOutlook:
    """A pool's nodes at a moment, for judging when room frees up there (`core.waiting`)."""

    at: float  # Unix seconds: when the picture was taken (the edge's clock, passed in)
    free: Mapping[str, Mapping[str, int]]  # node -> free milli-units, not counting `held`
    running: tuple[RunningPod, ...]
    # The requests of the pods podtier holds in the pool that are not bound yet (placed with
    # room, or waiting for it), oldest first.
    held: tuple[Mapping[str, int], ...] = ()


class CapacityView(Protocol):
    """A consistent picture of free capacity per node, valid inside one transaction."""

    @property
    def status(self) -> HeadroomStatus: ...

    def find_node(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> str | None:
        """A schedulable, Ready node matching `node_selector`, whose NoSchedule/NoExecute
        taints `tolerations` tolerate, with `requests` (milli-units) free; None if none.
        With several replicas, only nodes of this replica's share count."""
        ...

    def find_elsewhere(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> Borrowed | None:
        """With several replicas, when no pool has room in this replica's share: a node with
        room among all the pool's nodes, and how many pods of `requests` they could take now.
        None with one replica (the share is every node), or when no node has room."""
        ...

    def outlook(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> PoolOutlook | None:
        """Every schedulable node matching `node_selector` whose taints `tolerations`
        tolerate (all replicas' shares), what is free on each, and the pods running there;
        None when this view cannot tell."""
        ...

    def reserve(self, node: str, requests: Mapping[str, int], key: str) -> None:
        """Hold `requests` on `node` for the pod `key` (namespace/name) until the watch sees
        the pod or the reservation expires."""
        ...


class Headroom(Protocol):
    """The I/O side: the cluster watcher, a file snapshot, or nothing at all."""

    def ready(self) -> bool:
        """True once the first sync is done (or headroom is deliberately disabled)."""
        ...

    def transaction(self, now: float) -> Any:
        """A context manager yielding a `CapacityView` at monotonic time `now`."""
        ...

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        """The labels of namespace `name`, or None when this source does not know them."""
        ...


class StartableHeadroom(Headroom, Protocol):
    """A headroom source with a lifecycle: `start()` begins watching, `stop()` ends it (no-ops
    for a file snapshot or for headroom switched off)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _UnknownView:
    def __init__(self, reason: str) -> None:
        self.status = HeadroomStatus(known=False, reason=reason)

    def find_node(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> str | None:
        return None

    def find_elsewhere(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> Borrowed | None:
        return None

    def outlook(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> PoolOutlook | None:
        return None

    def reserve(self, node: str, requests: Mapping[str, int], key: str) -> None:
        return None


class NoHeadroom:
    """Headroom deliberately off (`--cluster none`): always ready, never known."""

    def __init__(self, reason: str = "disabled by --cluster none") -> None:
        self._view = _UnknownView(reason)

    def ready(self) -> bool:
        return True

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        return None

    @contextmanager
    def transaction(self, now: float) -> Iterator[CapacityView]:
        yield self._view


def unknown_view(reason: str) -> CapacityView:
    return _UnknownView(reason)
