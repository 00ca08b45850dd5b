"""Node groups: the nodes one (node selector, tolerations) pair may use, indexed by free capacity.

`find_node` is asked about a few (node selector, tolerations) pairs, one per pool. Each pair
gets a `NodeGroup`, kept up to date by `ClusterState` as nodes change: the nodes it may use
(Ready, not cordoned, labels match, blocking taints tolerated) and, per resource, a max-heap of
free capacity. A group reads the state's nodes and usage live (the same dicts), and is told
which members' usage went down (`freed`).

The heaps are lazy: every member node has an entry at least as large as its free amount when a
query reads them. Capacity coming back (a pod gone, a node joining) is noted in the group and
pushed as a fresh entry when the group is next asked, so a node freed and taken again between
two queries costs one entry; capacity taken pushes nothing (the old entry is then an
over-estimate, corrected when it reaches the top). A query first tries the node the group's
last query found, while it is still a member with room (one fit check; a run of pods of one
shape fills that node before the next). Otherwise it reads the largest free amount of each
requested resource (so "no node fits" is usually answered without a scan), then tries the nodes
with the most free of each resource, and scans the group only when capacity is fragmented (no
roomiest node has room in every resource).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

from podtier.webhook.core.resources import Resources
from podtier.webhook.headroom.records import NodeRecord
from podtier.webhook.headroom.taints import Toleration, parse_tolerations, tolerates_all

Selector = tuple[tuple[str, str], ...]
GroupKey = tuple[Selector, tuple[Toleration, ...]]


def group_key(
    node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
) -> GroupKey:
    """The (selector, tolerations) pair a query or a hold is indexed by."""
    selector = tuple(sorted((str(k), str(v)) for k, v in node_selector.items()))
    return selector, parse_tolerations(list(tolerations))


def fits(
    nodes: Mapping[str, NodeRecord],
    used_by: Mapping[str, Resources],
    node: str,
    requests: Mapping[str, int],
) -> bool:
    """Whether `node` has room for `requests` now (what its pods and holds use counted)."""
    used = used_by.get(node, {})
    allocatable = nodes[node].allocatable
    for resource, value in requests.items():
        if value > 0 and value > allocatable.get(resource, 0) - used.get(resource, 0):
            return False
    return True


class NodeGroup:
    """The nodes one (node selector, tolerations) pair may use, indexed by free capacity."""

    __slots__ = (
        "selector",
        "tolerations",
        "nodes",
        "used",
        "members",
        "heaps",
        "latest",
        "freed",
        "last",
    )

    def __init__(
        self,
        selector: Selector,
        tolerations: tuple[Toleration, ...],
        nodes: Mapping[str, NodeRecord],
        used: Mapping[str, Resources],
    ) -> None:
        self.selector = selector
        self.tolerations = tolerations
        self.nodes = nodes  # the state's, read live: node name -> record
        self.used = used  # and node name -> summed charges
        self.members: dict[str, None] = {}
        self.heaps: dict[str, list[tuple[int, str]]] = {}
        # Per resource, node -> the free amount of an entry the node has in the heap (the one
        # last put in): a node freed and taken again is already there, and needs no new entry.
        self.latest: dict[str, dict[str, int]] = {}
        # Members with (maybe) more free than their heap entries say: new members, and nodes
        # whose usage went down. Their fresh entries are pushed when the group is next asked.
        self.freed: set[str] = set()
        # The node the group's last query found: asked first next time (see `find`).
        self.last = ""

    def admits(self, node: NodeRecord) -> bool:
        return (
            node.schedulable
            and all(node.labels.get(key) == value for key, value in self.selector)
            and tolerates_all(self.tolerations, node.taints)
        )

    def fits(self, node: str, requests: Mapping[str, int]) -> bool:
        return fits(self.nodes, self.used, node, requests)

    def find(self, requests: Mapping[str, int]) -> str | None:
        """A member with room for `requests`, or None."""
        # The node the last query of this group found, while it still has the room: pods of
        # one pool come in runs of the same few shapes, so it usually has, and one `fits`
        # costs a fifth of reading the heaps (which need a correction after every placement).
        # Any node with room is a right answer; this one packs a run onto one node before
        # the next, where the heaps alone would spread it over the roomiest nodes.
        last = self.last
        if last and last in self.members and self.fits(last, requests):
            return last
        found = self._search(requests)
        if found is not None:
            self.last = found
        return found

    def _search(self, requests: Mapping[str, int]) -> str | None:
        """A member with room for `requests`, through the heaps (see the module's docstring)."""
        if not self.members:
            return None
        candidates = []
        for resource, value in requests.items():
            if value <= 0:
                continue
            top = self.largest_free(resource)
            if top is None or top[0] < value:
                return None  # not even the roomiest node has enough of this resource
            candidates.append(top[1])
        for node in candidates:
            if self.fits(node, requests):
                return node
        for node in self.members:  # fragmented: no single roomiest node fits everything
            if self.fits(node, requests):
                return node
        return None

    def roomiest(self, requests: Mapping[str, int]) -> str:
        """The member with the most free of the resource the pod is shortest of (where a pod
        that fits nowhere is held); "" for an empty group."""
        best = ""
        shortest = None
        for resource, value in requests.items():
            if value <= 0:
                continue
            top = self.largest_free(resource)
            if top is not None and (shortest is None or top[0] - value < shortest):
                shortest, best = top[0] - value, top[1]
        return best or next(iter(self.members), "")

    def largest_free(self, resource: str) -> tuple[int, str] | None:
        """The most free of `resource` on a member, and that member; None for an empty group."""
        if self.freed:
            self._push_freed()
        heap = self.heaps.get(resource)
        if heap is None:
            heap = self._rebuild(resource)
        latest = self.latest[resource]
        members, nodes, used_by = self.members, self.nodes, self.used
        while heap:
            negative_free, node = heap[0]
            if node not in members:
                heapq.heappop(heap)  # left the group since
                latest.pop(node, None)
                continue
            used = used_by.get(node)
            free = nodes[node].allocatable.get(resource, 0) - (used.get(resource, 0) if used else 0)
            if free == -negative_free:
                return free, node
            # An over-estimate left by a placement (usage only pushes when it goes down):
            # correct it in place and look again.
            heapq.heapreplace(heap, (-free, node))
            latest[node] = free
        return None

    def _free(self, node: str, resource: str) -> int:
        used = self.used.get(node)
        free = self.nodes[node].allocatable.get(resource, 0)
        return free - used.get(resource, 0) if used is not None else free

    def _rebuild(self, resource: str) -> list[tuple[int, str]]:
        """A fresh heap of `resource`: one exact entry per member."""
        latest = self.latest[resource] = {node: self._free(node, resource) for node in self.members}
        heap = self.heaps[resource] = [(-free, node) for node, free in latest.items()]
        heapq.heapify(heap)
        return heap

    def _push_freed(self) -> None:
        """Push the freed members' entries, at their free capacity now (a usage that went
        down and up again since costs one entry, not two)."""
        limit = 2 * len(self.members) + 64
        for resource, heap in list(self.heaps.items()):
            if len(heap) + len(self.freed) > limit:  # mostly stale entries: rebuild
                self._rebuild(resource)
                continue
            latest = self.latest[resource]
            for node in self.freed:
                if node in self.members:
                    free = self._free(node, resource)
                    if latest.get(node) != free:  # else its entry is right already
                        heapq.heappush(heap, (-free, node))
                        latest[node] = free
        self.freed.clear()
