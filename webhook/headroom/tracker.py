"""`ClusterHeadroom`: the `Headroom` the admission edge talks to, over a `ClusterState`.

It owns the lock that makes "find a node, then reserve it" one atomic step (a transaction),
and it knows how fresh the picture is. Feeders (the live watcher, a file) call `apply`,
`relist` and the contact methods; they never touch the state directly.

Freshness: each tracked kind (Node, Pod) records when it last heard from its source. While a
watch stream is open the picture is current; once it breaks, the picture ages from the last
line received, and beyond `stale_after` seconds headroom is unknown, with the reason.
Times are monotonic seconds from the injected `clock`, the same clock the edge passes as `now`.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from podtier.webhook.core.capacity import (
    ROOM_COUNT_LIMIT,
    Borrowed,
    CapacityView,
    HeadroomStatus,
    PoolOutlook,
)
from podtier.webhook.headroom.decode import PodFields
from podtier.webhook.headroom.groups import GroupKey
from podtier.webhook.headroom.records import RecordError, object_name, pod_key
from podtier.webhook.headroom.running import RunningPods
from podtier.webhook.headroom.state import NAMESPACE, NODE, POD, ClusterState
from podtier.webhook.observability.metrics import (
    HEADROOM_LAST_SYNC,
    HEADROOM_RESOURCES,
    PoolHeadroom,
)
from podtier.webhook.policy import Pool

log = logging.getLogger("podtier.headroom")

KINDS = (NODE, POD)

# An observer of the pod picture: (event type, pod key "namespace/name", raw pod or None).
# Called under the tracker's lock, after the state took the event: ADDED/MODIFIED with the raw
# object (every relist item comes as MODIFIED), DELETED with the raw object, or with None for
# a pod a relist no longer has. It must be quick and must not call back into the tracker. The
# raw pod holds the fields `decode.PodFields.LISTENERS` names (feeders decode it so): a
# listener that reads another field must add it there.
PodListener = Callable[[str, str, Mapping[str, Any] | None], None]


class _Feed:
    __slots__ = ("synced", "connected", "last_contact", "error")

    def __init__(self) -> None:
        self.synced = False
        self.connected = False
        self.last_contact = 0.0
        self.error = ""


class ClusterHeadroom:
    """Headroom from a stream of Node and Pod objects (live watch or file)."""

    def __init__(
        self,
        *,
        source: str,
        stale_after: float = 60.0,
        reservation_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        static: bool = False,
        namespaces: bool = False,
    ) -> None:
        self.source = source
        # Namespaces (their labels, for rules with a namespaceSelector) only when asked for:
        # they need one more RBAC grant, and readiness then waits for their first list too.
        self.kinds = (*KINDS, NAMESPACE) if namespaces else KINDS
        self.stale_after = stale_after
        self.reservation_ttl = reservation_ttl
        self.clock = clock
        self.static = static  # a file snapshot never goes stale
        self.state = ClusterState()
        self.lock = threading.Lock()
        self._feeds = {kind: _Feed() for kind in self.kinds}
        self._synced = threading.Event()
        self._gauge_set = float("-inf")
        self.skipped = 0  # objects that could not be read (logged)
        self.skip_errors: list[str] = []  # the first few of them
        self._pod_listeners: list[PodListener] = []
        self.running: RunningPods | None = None  # `track_running`
        self.wall_clock: Callable[[], float] = time.time  # the outlook's moment (Unix seconds)
        self._current = HeadroomStatus(True, f"headroom from {source}")
        # Peers (`peers.py`): why this replica may not promise capacity now ("" when it may),
        # and whether it ever agreed with them on a share of the nodes (readiness waits once).
        self._peers_problem = ""
        self._peers_agreed = True

    def use_peers(self) -> None:
        """Share the nodes with peer replicas: promise nothing until `set_peers` says so."""
        with self.lock:
            self._peers_problem = "this replica has not yet met its peers"
            self._peers_agreed = False

    def set_peers(self, share: tuple[int, int] | None, problem: str) -> None:
        """This replica's share of each pool's nodes, and why it may not promise ("" if it may)."""
        with self.lock:
            self.state.set_share(share)
            self._peers_problem = problem
            self._peers_agreed = self._peers_agreed or not problem

    @property
    def pod_fields(self) -> PodFields:
        """How much of each pod feeders must decode (`headroom.decode`): what headroom reads,
        and with a pod listener, what the listeners read too."""
        return PodFields.LISTENERS if self._pod_listeners else PodFields.HEADROOM

    def add_pod_listener(self, listener: PodListener) -> None:
        """Also tell `listener` about every pod event the state takes (see `PodListener`).
        Add it before the feed starts, so it sees the first list."""
        with self.lock:
            self._pod_listeners.append(listener)

    def track_running(self) -> None:
        """Keep the pods running on each node, with their tasks and start times, for the
        outlook (`core.waiting`). Call it before the feed starts."""
        if self.running is None:
            self.running = RunningPods()
            self.add_pod_listener(self.running)

    # ------------------------------------------------------------------ Headroom protocol

    def ready(self) -> bool:
        return self._synced.is_set() and self._peers_agreed

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the first sync is done (e.g. `explain --cluster auto`); False on timeout."""
        return self._synced.wait(timeout)

    def transaction(self, now: float) -> _Transaction:
        """A context manager: the tracker's lock held, yielding a `CapacityView` at `now`."""
        return _Transaction(self, now)

    def status(self, now: float) -> HeadroomStatus:
        with self.lock:
            return self._status(now)

    def _status(self, now: float) -> HeadroomStatus:
        waiting = [kind.lower() + "s" for kind, feed in self._feeds.items() if not feed.synced]
        if waiting:
            error = "; ".join(f.error for f in self._feeds.values() if f.error)
            return HeadroomStatus(
                False,
                f"headroom is not synced yet (waiting for the first list of {' and '.join(waiting)}"
                f" from {self.source}{': ' + error if error else ''})",
            )
        if self.static:
            return self._current
        if self._peers_problem:
            return HeadroomStatus(False, f"headroom is not promised: {self._peers_problem}")
        for kind, feed in self._feeds.items():
            age = 0.0 if feed.connected else now - feed.last_contact
            if age > self.stale_after:
                why = f": {feed.error}" if feed.error else ""
                return HeadroomStatus(
                    False,
                    f"headroom is stale: no {kind.lower()} updates from {self.source} for "
                    f"{age:.0f}s (limit {self.stale_after:.0f}s){why}",
                )
        return self._current

    def reservation_count(self) -> int:
        """Placements held and not yet seen bound (for `podtier_reservations`, at scrape time)."""
        return len(self.state.reservations)

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        """The labels of namespace `name`; None when namespaces are not tracked (or not yet
        listed), so the caller knows the labels are unknown rather than empty."""
        feed = self._feeds.get(NAMESPACE)
        if feed is None or not feed.synced:
            return None
        return self.state.namespaces.get(name)

    def pool_headroom(self, pools: Iterable[Pool]) -> list[PoolHeadroom]:
        """Free capacity per pool, for the headroom gauges: the most any one node a pod of the
        pool may use has free, and the sum over those nodes (reservations included)."""
        figures = []
        with self.lock:
            state = self.state
            for pool in pools:
                largest = dict.fromkeys(HEADROOM_RESOURCES, 0)
                total = dict.fromkeys(HEADROOM_RESOURCES, 0)
                for node in state.eligible_nodes(pool.node_selector, pool.tolerations):
                    for resource in HEADROOM_RESOURCES:
                        free = max(state.free(node, resource), 0)
                        largest[resource] = max(largest[resource], free)
                        total[resource] += free
                figures.append(PoolHeadroom(pool.name, largest, total))
        return figures

    # ------------------------------------------------------------------ feeding

    def apply(self, kind: str, event_type: str, raw: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) for a Node or a Pod."""
        with self.lock:
            self._apply(kind, event_type, raw)
            now = self._feeds[kind].last_contact = self.clock()
        if now - self._gauge_set > 1.0:  # the metric needs no finer grain than a second
            self._gauge_set = now
            HEADROOM_LAST_SYNC.set_to_current_time()

    def relist(self, kind: str, pages: Iterable[Sequence[Mapping[str, Any]]]) -> None:
        """Replace everything known of `kind` by a full list, given page by page: each item is
        applied as an event, and what the list no longer has is applied as deleted."""
        seen: set[str] = set()
        with collector_paused():
            for page in pages:
                with self.lock:
                    for raw in page:
                        seen.add(self._apply(kind, "MODIFIED", raw))
        with self.lock:
            for gone in self.state.keys(kind) - seen:
                self.state.delete(kind, gone)
                if kind == POD:
                    self._tell("DELETED", gone, None)
            feed = self._feeds[kind]
            feed.synced = True
            feed.last_contact = self.clock()
            feed.error = ""
            if all(f.synced for f in self._feeds.values()):
                self._synced.set()
        HEADROOM_LAST_SYNC.set_to_current_time()

    def _apply(self, kind: str, event_type: str, raw: Mapping[str, Any]) -> str:
        """The event applied (and told to the pod listeners); the object's key."""
        try:
            key = self.state.apply(kind, event_type, raw, self.clock())
        except RecordError as err:
            self.skipped += 1
            if len(self.skip_errors) < 5:
                self.skip_errors.append(str(err))
            log.warning("headroom skips an object it cannot read: %s", err)
            return pod_key(raw) if kind == POD else object_name(raw)
        if kind == POD and self._pod_listeners:
            self._tell(event_type, key, raw)
        return key

    def _tell(self, event_type: str, key: str, raw: Mapping[str, Any] | None) -> None:
        for listener in self._pod_listeners:
            try:
                listener(event_type, key, raw)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the feed
                log.exception("a pod listener failed on %s %s", event_type, key)

    def connected(self, kind: str) -> None:
        """A watch stream for `kind` is open: the picture is current while it stays open."""
        with self.lock:
            feed = self._feeds[kind]
            feed.connected = True
            feed.last_contact = self.clock()
            feed.error = ""

    def touched(self, kind: str) -> None:
        """A bookmark (or any sign of life) for `kind`."""
        with self.lock:
            self._feeds[kind].last_contact = self.clock()
        HEADROOM_LAST_SYNC.set_to_current_time()

    def disconnected(self, kind: str, error: str = "") -> None:
        """The stream for `kind` ended; the picture ages from its last contact."""
        with self.lock:
            feed = self._feeds[kind]
            feed.connected = False
            if error:
                feed.error = error


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector during a (re)list.

    Parsing pages of pods makes millions of short-lived containers that survive long enough
    to be promoted, so the collector would rescan the whole heap every page or two (measured:
    about 4x the cost of the list itself at 150,000 pods). The parsed JSON has no cycles and is
    freed by reference counting, so nothing piles up while it is off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Transaction:
    """`ClusterHeadroom.transaction`: a class rather than a `@contextmanager` generator, which
    costs more than the lock it holds on the admission path."""

    __slots__ = ("_headroom", "_now")

    def __init__(self, headroom: ClusterHeadroom, now: float) -> None:
        self._headroom = headroom
        self._now = now

    def __enter__(self) -> CapacityView:
        headroom, now = self._headroom, self._now
        headroom.lock.acquire()
        try:
            state = headroom.state
            if state.reservations or state.shadows:
                state.expire(now)
            return _View(headroom, headroom._status(now), now)
        except BaseException:
            headroom.lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._headroom.lock.release()


class _View:
    """One transaction's view; valid only inside `ClusterHeadroom.transaction`."""

    __slots__ = ("_headroom", "_now", "status", "_found")

    def __init__(self, headroom: ClusterHeadroom, status: HeadroomStatus, now: float) -> None:
        self._headroom = headroom
        self._now = now
        self.status = status
        self._found: dict[str, GroupKey] = {}  # node -> the query it was found for

    def find_node(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> str | None:
        if not self.status.known:
            return None
        state = self._headroom.state
        where = state.asked_key(node_selector, tolerations)
        node = state.find_in_share(*where, requests)
        if node is not None:
            self._found[node] = where
        return node

    def find_elsewhere(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> Borrowed | None:
        state = self._headroom.state
        if not self.status.known or state.share is None or state.share[1] < 2:
            return None
        where = state.asked_key(node_selector, tolerations)
        found = state.borrow(*where, requests, ROOM_COUNT_LIMIT)
        if found is None:
            return None
        node, room = found
        self._found[node] = where
        return Borrowed(node, room)

    def outlook(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> PoolOutlook | None:
        headroom = self._headroom
        state = headroom.state
        if not self.status.known:
            return None
        where = state.asked_key(node_selector, tolerations)
        free: dict[str, dict[str, int]] = {}
        held: list[tuple[int, Mapping[str, int]]] = []
        order = {key: i for i, key in enumerate(state.holds)}  # oldest first
        for node in state.eligible_nodes(node_selector, tolerations):
            room = {name: state.free(node, name) for name in state.nodes[node].allocatable}
            for key in state.holds_on.get(node, ()):  # not bound yet: given back, listed
                requests = state.requests_of(key)
                held.append((order.get(key, 0), requests))
                for name, value in requests.items():
                    room[name] = room.get(name, 0) + value
            free[node] = room
            self._found.setdefault(node, where)  # a waiting pod's hold may move in the pool
        running = headroom.running
        pods = tuple(pod for node in free for pod in running.on(node)) if running else ()
        waiting = tuple(requests for _, requests in sorted(held, key=lambda h: h[0]))
        return PoolOutlook(headroom.wall_clock(), free, pods, waiting)

    def reserve(self, node: str, requests: Mapping[str, int], key: str) -> None:
        """Hold the node found in this transaction; the hold may move within the group it was
        found for, when the scheduler binds another pod of that group elsewhere."""
        headroom = self._headroom
        expires = self._now + headroom.reservation_ttl
        headroom.state.reserve(node, requests, key, expires, self._found.get(node))
