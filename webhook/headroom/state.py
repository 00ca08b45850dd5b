"""The cluster picture headroom decides from: nodes, what each node's pods request, and holds.

`ClusterState` is plain data plus the rules that change it; it does no I/O and reads no clock
(times are passed in). Every watch event, every item of a relist and every item of a
`kubectl get -o json` file goes through `apply`, and each costs O(1) in the size of the cluster:
it touches one pod's charge, one node's usage and the few node groups that node is in.

What uses a node's capacity (a pod's *charge*):
- a pod bound to it (`spec.nodeName`) that has not Succeeded or Failed;
- a reservation: a placement podtier just made, held until the watch shows the pod, or until
  it expires (TTL);
- a Pending pod with the `podtier.io/pool` annotation and no node yet (placed by any podtier
  replica): it is held on one node of its pool, the node its own reservation was on if this
  replica made it, otherwise the node `find_node` picks for its own nodeSelector, tolerations
  and requests. If no node fits, it holds nothing (it waits for capacity like any other).
  The hold moves to the real node when the pod binds.

Node groups: `find_node` is asked about a few (node selector, tolerations) pairs, one per pool.
Each pair gets a `NodeGroup`, kept up to date as nodes change: the nodes it may use (Ready,
not cordoned, labels match, blocking taints tolerated) and, per resource, a max-heap of free
capacity. The heaps are lazy: every member node has an entry at least as large as its free
amount when a query reads them. Capacity coming back (a pod gone, a node joining) is noted in
the group and pushed as a fresh entry when the group is next asked, so a node freed and taken
again between two queries costs one entry; capacity taken pushes nothing (the old entry is then
an over-estimate, corrected when it reaches the top). A query first reads the largest free
amount of each requested resource (so "no node fits" is usually answered without a scan), then
tries the nodes with the most free of each resource, and scans the group only
when capacity is fragmented (no roomiest node has room in every resource).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from podtier.webhook.core.resources import Resources
from podtier.webhook.headroom.records import (
    NodeRecord,
    namespace_labels,
    node_record,
    object_name,
    pod_key,
    pod_record,
)
from podtier.webhook.headroom.taints import Toleration, parse_tolerations, tolerates_all

NODE = "Node"
POD = "Pod"
NAMESPACE = "Namespace"  # only labels are kept, for rules with a namespaceSelector

Charge = tuple[str, Resources]  # (node name, requests)
Selector = tuple[tuple[str, str], ...]

# find_node's questions as asked (JSON of the selector and the tolerations) -> their node group.
# The core asks the same few again and again (a pod template's own tolerations plus its pool's),
# and canonicalising them costs more than the search; bounded all the same.
_ASKED_LIMIT = 4096


@dataclass(slots=True)
class Reservation:
    node: str
    requests: Resources
    expires: float


class NodeGroup:
    """The nodes one (node selector, tolerations) pair may use, indexed by free capacity."""

    __slots__ = ("selector", "tolerations", "members", "heaps", "freed")

    def __init__(self, selector: Selector, tolerations: tuple[Toleration, ...]) -> None:
        self.selector = selector
        self.tolerations = tolerations
        self.members: dict[str, None] = {}
        self.heaps: dict[str, list[tuple[int, str]]] = {}
        # Members with (maybe) more free than their heap entries say: new members, and nodes
        # whose usage went down. Their fresh entries are pushed when the group is next asked.
        self.freed: set[str] = set()

    def admits(self, node: NodeRecord) -> bool:
        return (
            node.schedulable
            and all(node.labels.get(key) == value for key, value in self.selector)
            and tolerates_all(self.tolerations, node.taints)
        )


class ClusterState:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeRecord] = {}
        # Every pod seen -> the node its requests count on ("" for none), and those requests.
        # Plain str -> str and str -> shared dict maps: 150,000 pods add no objects for the
        # cyclic garbage collector to scan.
        self.pods: dict[str, str] = {}
        self.pod_requests: dict[str, Resources] = {}
        self.used: dict[str, Resources] = {}  # node name -> summed charges
        self.reservations: dict[str, Reservation] = {}  # pod key -> podtier placement, not yet seen
        self._groups: dict[tuple[Selector, tuple[Toleration, ...]], NodeGroup] = {}
        self._asked: dict[bytes, NodeGroup] = {}
        self.namespaces: dict[str, Mapping[str, str]] = {}  # name -> labels

    # ------------------------------------------------------------------ events

    def apply(self, kind: str, event_type: str, raw: Mapping[str, Any]) -> None:
        """Apply one ADDED / MODIFIED / DELETED event for a Node or a Pod."""
        if kind == POD:
            if event_type == "DELETED":
                self.delete_pod(pod_key(raw))
            else:
                self._upsert_pod(raw)
        elif kind == NODE:
            if event_type == "DELETED":
                self.delete_node(object_name(raw))
            else:
                self._set_node(node_record(raw))
        elif kind == NAMESPACE:
            if event_type == "DELETED":
                self.namespaces.pop(object_name(raw), None)
            else:
                self.namespaces[object_name(raw)] = namespace_labels(raw)
        else:
            raise ValueError(f"headroom does not track {kind}")

    def keys(self, kind: str) -> set[str]:
        """The pod keys (namespace/name) or node names currently known, for a relist."""
        if kind == NAMESPACE:
            return set(self.namespaces)
        return set(self.pods) if kind == POD else set(self.nodes)

    def delete(self, kind: str, key: str) -> None:
        if kind == POD:
            self.delete_pod(key)
        elif kind == NAMESPACE:
            self.namespaces.pop(key, None)
        else:
            self.delete_node(key)

    def delete_pod(self, key: str) -> None:
        self._drop_reservation(key)
        node = self.pods.pop(key, "")
        if node:
            self._charge((node, self.pod_requests.pop(key)), -1)

    def delete_node(self, name: str) -> None:
        # Pods bound to it keep their charge until they are deleted themselves.
        if self.nodes.pop(name, None) is not None:
            self._refresh_groups(name)

    def _set_node(self, node: NodeRecord) -> None:
        if self.nodes.get(node.name) == node:
            return  # a heartbeat or a field headroom does not keep
        self.nodes[node.name] = node
        self._refresh_groups(node.name)

    def _upsert_pod(self, raw: Mapping[str, Any]) -> None:
        pod = pod_record(raw)
        key = pod.key
        previous = self.pods.get(key, "")
        if (
            pod.uses_node
            and previous == pod.node
            and key not in self.reservations
            and self.pod_requests[key] == pod.requests
        ):
            return  # a status update: same node, same requests
        held_on = ""
        reservation = self.reservations.pop(key, None)
        if reservation is not None:
            self._charge((reservation.node, reservation.requests), -1)
            held_on = reservation.node
        if previous:
            self._charge((previous, self.pod_requests.pop(key)), -1)
            held_on = held_on or previous

        node = ""
        if pod.uses_node:
            node = pod.node
        elif pod.waits_in_pool:
            if not held_on or held_on not in self.nodes:
                held_on = self._find(pod.node_selector, pod.tolerations, pod.requests) or ""
            node = held_on
        self.pods[key] = node
        if node:
            self.pod_requests[key] = pod.requests
            self._charge((node, pod.requests), +1)

    # ------------------------------------------------------------------ reservations

    def reserve(self, node: str, requests: Mapping[str, int], key: str, expires: float) -> None:
        """Hold `requests` on `node` for pod `key` until it is seen or `expires` passes.
        A pod the watch already shows is counted already and gets no reservation."""
        if key in self.pods:
            return
        self._drop_reservation(key)
        held = dict(requests)
        self.reservations[key] = Reservation(node, held, expires)
        self._charge((node, held), +1)

    def expire(self, now: float) -> int:
        """Release reservations whose TTL has passed; returns how many."""
        expired = []
        for key, reservation in self.reservations.items():
            if reservation.expires > now:
                break  # insertion order is expiry order
            expired.append(key)
        for key in expired:
            self._drop_reservation(key)
        return len(expired)

    def _drop_reservation(self, key: str) -> None:
        reservation = self.reservations.pop(key, None)
        if reservation is not None:
            self._charge((reservation.node, reservation.requests), -1)

    # ------------------------------------------------------------------ queries

    def free(self, node: str, resource: str) -> int:
        record = self.nodes.get(node)
        allocatable = record.allocatable.get(resource, 0) if record is not None else 0
        return allocatable - self.used.get(node, {}).get(resource, 0)

    def fits(self, node: str, requests: Mapping[str, int]) -> bool:
        record = self.nodes[node]
        used = self.used.get(node, {})
        allocatable = record.allocatable
        for resource, value in requests.items():
            if value > 0 and value > allocatable.get(resource, 0) - used.get(resource, 0):
                return False
        return True

    def find_node(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> str | None:
        return self._find_in(self._asked_group(node_selector, tolerations), requests)

    def _asked_group(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> NodeGroup:
        try:
            asked = orjson.dumps((node_selector, tolerations))
        except TypeError:  # not plain JSON values: canonicalise every time
            return self._group(_selector(node_selector), parse_tolerations(list(tolerations)))
        group = self._asked.get(asked)
        if group is None:
            if len(self._asked) >= _ASKED_LIMIT:
                self._asked.clear()
            group = self._group(_selector(node_selector), parse_tolerations(list(tolerations)))
            self._asked[asked] = group
        return group

    def _find(
        self, selector: Selector, tolerations: tuple[Toleration, ...], requests: Mapping[str, int]
    ) -> str | None:
        return self._find_in(self._group(selector, tolerations), requests)

    def _find_in(self, group: NodeGroup, requests: Mapping[str, int]) -> str | None:
        if not group.members:
            return None
        candidates = []
        for resource, value in requests.items():
            if value <= 0:
                continue
            top = self._largest_free(group, resource)
            if top is None or top[0] < value:
                return None  # not even the roomiest node has enough of this resource
            candidates.append(top[1])
        for node in candidates:
            if self.fits(node, requests):
                return node
        for node in group.members:  # fragmented: no single roomiest node fits everything
            if self.fits(node, requests):
                return node
        return None

    def eligible_nodes(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """The nodes a pod with this selector and these tolerations may use (for explanations)."""
        return list(self._asked_group(node_selector, tolerations).members)

    # ------------------------------------------------------------------ index upkeep

    def _group(self, selector: Selector, tolerations: tuple[Toleration, ...]) -> NodeGroup:
        group = self._groups.get((selector, tolerations))
        if group is None:
            group = NodeGroup(selector, tolerations)
            for name, node in self.nodes.items():
                if group.admits(node):
                    group.members[name] = None
            self._groups[(selector, tolerations)] = group
        return group

    def _largest_free(self, group: NodeGroup, resource: str) -> tuple[int, str] | None:
        if group.freed:
            self._push_freed(group)
        heap = group.heaps.get(resource)
        if heap is None:
            heap = group.heaps[resource] = self._heap(group.members, resource)
        members, nodes, used_by = group.members, self.nodes, self.used
        while heap:
            negative_free, node = heap[0]
            if node not in members:
                heapq.heappop(heap)  # left the group since
                continue
            used = used_by.get(node)
            free = nodes[node].allocatable.get(resource, 0) - (used.get(resource, 0) if used else 0)
            if free == -negative_free:
                return free, node
            # An over-estimate left by a placement (usage only pushes when it goes down):
            # correct it in place and look again.
            heapq.heapreplace(heap, (-free, node))
        return None

    def _heap(self, nodes: Iterable[str], resource: str) -> list[tuple[int, str]]:
        heap = [(-self.free(node, resource), node) for node in nodes]
        heapq.heapify(heap)
        return heap

    def _push_freed(self, group: NodeGroup) -> None:
        """Push the freed members' entries, at their free capacity now (a usage that went
        down and up again since costs one entry, not two)."""
        limit = 2 * len(group.members) + 64
        for resource, heap in group.heaps.items():
            if len(heap) + len(group.freed) > limit:  # mostly stale entries: rebuild
                group.heaps[resource] = self._heap(group.members, resource)
                continue
            for node in group.freed:
                if node in group.members:
                    used = self.used.get(node)
                    free = self.nodes[node].allocatable.get(resource, 0)
                    if used is not None:
                        free -= used.get(resource, 0)
                    heapq.heappush(heap, (-free, node))
        group.freed.clear()

    def _refresh_groups(self, name: str) -> None:
        node = self.nodes.get(name)
        for group in self._groups.values():
            if node is not None and group.admits(node):
                group.members[name] = None
                group.freed.add(name)
            else:
                group.members.pop(name, None)

    def _charge(self, charge: Charge, sign: int) -> None:
        node, requests = charge
        used = self.used.get(node)
        if used is None:
            used = self.used[node] = {}
        for resource, value in requests.items():
            used[resource] = used.get(resource, 0) + sign * value
        if sign > 0:
            return  # less free: the heaps' entries for the node become over-estimates
        if not any(used.values()):
            del self.used[node]
        for group in self._groups.values():
            if node in group.members:
                group.freed.add(node)


def _selector(node_selector: Mapping[str, str]) -> Selector:
    return tuple(sorted((str(k), str(v)) for k, v in node_selector.items()))
