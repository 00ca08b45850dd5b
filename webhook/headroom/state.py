"""The cluster picture headroom decides from: nodes, what each node's pods request, and holds.

`ClusterState` is plain data plus the rules that change it; it does no I/O and reads no clock
(times are passed in). Every watch event, every item of a relist and every item of a
`kubectl get -o json` file goes through `apply`, and each costs O(1) in the size of the cluster:
it touches one pod's charge, one node's usage and the few node groups that node is in.

What uses a node's capacity (a pod's *charge*):
- a pod bound to it (`spec.nodeName`) that has not Succeeded or Failed;
- a *hold*: a pod podtier placed that the scheduler has not bound yet. It is either a
  reservation (a placement this replica just made, held until the watch shows the pod, or until
  it expires) or a Pending pod with the `podtier.io/pool` annotation and no node yet (placed by
  any replica). A hold sits on one node of its pool: the node its reservation was on if this
  replica made it; otherwise the node whose room the replica that placed it counted (its
  `podtier.io/node` annotation), while that node has the room; otherwise the node `find_node`
  picks for its own nodeSelector, tolerations and requests. So every replica shares one
  packing, and one replica's share is not filled by pods other replicas promised elsewhere.
  The hold moves to the real node when the pod binds.

Holds are a packing of the pool's waiting pods onto its nodes, and the scheduler need not agree
with it node by node: it may bind a pod to another node of the pool than the one podtier held it
on. The capacity is then taken on the node it bound to and freed on the other, so the packing is
mended at once, as the scheduler will have to place the rest: holds on a node that is now over
its allocatable move to nodes with room (the newest first), and a hold that fits nowhere stays
*overcommitted* on the roomiest node of its pool. An overcommitted hold is a pod that will wait
for capacity; it keeps its pool full for new placements (no pod is promised room that a waiting
pod will take first) and moves as soon as capacity comes back anywhere in the pool. The same
happens when a node leaves the pool (deleted, cordoned, NotReady) while holds sit on it.

Replicas: with several podtier replicas, each promises new placements only from its *share* of
each group's nodes (`set_share`: the group's nodes sorted by name, every `count`-th from
`index`), so two replicas never promise the same room before the watch has shown each the
other's pods. Holds are not limited to the share: they model where the scheduler may put a
pod, which is any node of its pool. The scheduler does not know the shares either: when it
binds a pod this replica placed to a node of another replica's share, it may take room that
replica has just promised to a pod this one cannot see yet, and that pod will then need the room
this one's pod leaves. So the room stays held, as a *shadow* on the node the pod was held on, for
`PEER_LAG` seconds (longer than an admission takes to show up in every replica's watch).

Node groups (`groups.py`): each (node selector, tolerations) pair `find_node` is asked about
gets a `NodeGroup` of the nodes it may use, indexed by free capacity; the state keeps the groups'
members and their freed capacity up to date as nodes and charges change.

Where this differs from the scheduler, on purpose (docs/operations.md, "Where podtier's fit
rule and the scheduler's differ"; `tests/webhook/headroom/test_scheduler_differential.py`
checks the rest against the real kube-scheduler): a cordoned node is in no group, although the
scheduler's NodeUnschedulable plugin admits a pod that tolerates
`node.kubernetes.io/unschedulable:NoSchedule`; and a NotReady node is in no group, although the
scheduler never reads the Ready condition, only the `node.kubernetes.io/not-ready` and
`unreachable` taints (TaintToleration), which the node lifecycle controller adds seconds later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from podtier.webhook.core.resources import Resources
from podtier.webhook.headroom.groups import GroupKey, NodeGroup, Selector, fits, group_key
from podtier.webhook.headroom.records import (
    NodeRecord,
    namespace_labels,
    node_record,
    object_name,
    pod_key,
    pod_record,
)
from podtier.webhook.headroom.taints import Toleration

NODE = "Node"
POD = "Pod"
NAMESPACE = "Namespace"  # only labels are kept, for rules with a namespaceSelector

Charge = tuple[str, Resources]  # (node name, requests)
# How long room a pod of this replica's share left for another replica's node stays held (see
# "Replicas"): the webhook timeout (at most 10 s) plus the watch's lag, with margin.
PEER_LAG = 15.0
_ASKED_LIMIT = 4096  # questions remembered by `asked_key`


@dataclass(slots=True)
class Reservation:
    node: str
    requests: Resources
    expires: float


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
        # Holds (reservations and waiting pods) that may move: pod key -> the group it may use,
        # and node -> the keys held on it (in the order they came).
        self.holds: dict[str, GroupKey] = {}
        self.holds_on: dict[str, dict[str, None]] = {}
        # Holds that fit nowhere, per group, oldest first: pods that will wait for capacity.
        self.overcommitted: dict[GroupKey, dict[str, None]] = {}
        self._groups: dict[GroupKey, NodeGroup] = {}
        self._asked: dict[bytes, GroupKey] = {}  # see asked_key
        # This replica's share of each group (see "Replicas"): (index, count), or None for all.
        self.share: tuple[int, int] | None = None
        self.mine: set[str] = set()  # pods this replica placed, until they bind
        self.shadows: dict[str, Reservation] = {}  # pod key -> room held after a cross bind
        self._shares: dict[GroupKey, NodeGroup] = {}  # rebuilt when a group's members change
        self.namespaces: dict[str, Mapping[str, str]] = {}  # name -> labels

    # ------------------------------------------------------------------ events

    def apply(self, kind: str, event_type: str, raw: Mapping[str, Any], now: float = 0.0) -> str:
        """Apply one ADDED / MODIFIED / DELETED event for a Node or a Pod, seen at `now`; the
        object's key (a pod's "namespace/name", a node's or namespace's name)."""
        if kind == POD:
            if event_type != "DELETED":
                return self._upsert_pod(raw, now)
            key = pod_key(raw)
            self.delete_pod(key)
            return key
        if kind == NODE:
            if event_type != "DELETED":
                node = node_record(raw)
                self._set_node(node)
                return node.name
            name = object_name(raw)
            self.delete_node(name)
            return name
        if kind == NAMESPACE:
            name = object_name(raw)
            if event_type == "DELETED":
                self.namespaces.pop(name, None)
            else:
                self.namespaces[name] = namespace_labels(raw)
            return name
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
        freed = self._drop_reservation(key)
        self.mine.discard(key)
        shadow = self.shadows.pop(key, None)
        if shadow is not None:
            self._charge((shadow.node, shadow.requests), -1)
        self._unhold(key)  # while the pod still says where it is held
        node = self.pods.pop(key, "")
        if node:
            self._charge((node, self.pod_requests.pop(key)), -1)
            freed = node
        if freed:
            self._retry_overcommitted(freed)

    def delete_node(self, name: str) -> None:
        # Pods bound to it keep their charge until they are deleted themselves; holds move.
        if self.nodes.pop(name, None) is not None:
            self._refresh_groups(name)
            self._evacuate(name)

    def _set_node(self, node: NodeRecord) -> None:
        before = self.nodes.get(node.name)
        if before == node:
            return  # a heartbeat or a field headroom does not keep
        self.nodes[node.name] = node
        self._refresh_groups(node.name)
        if not node.schedulable:
            self._evacuate(node.name)
        elif before is None or not before.schedulable or before.allocatable != node.allocatable:
            self._retry_overcommitted(node.name)  # room appeared (or moved)
        if self._over(node.name):
            self._settle(node.name)

    def _upsert_pod(self, raw: Mapping[str, Any], now: float) -> str:
        pod = pod_record(raw)
        key = pod.key
        previous = self.pods.get(key, "")
        if (
            pod.uses_node
            and previous == pod.node
            and key not in self.reservations
            and key not in self.holds
            and self.pod_requests[key] == pod.requests
        ):
            return key  # a status update: same node, same requests
        held_for = self.holds.get(key)
        self._unhold(key)  # while the reservation or the pod record says where it is held
        held_on = ""
        reservation = self.reservations.pop(key, None)
        if reservation is not None:
            self._charge((reservation.node, reservation.requests), -1)
            held_on = reservation.node
        if previous:
            self._charge((previous, self.pod_requests.pop(key)), -1)
            held_on = held_on or previous

        node = ""
        where: GroupKey | None = None
        if pod.uses_node:
            node = pod.node
        elif pod.waits_in_pool:
            where = (pod.node_selector, pod.tolerations)
            node = self._hold_node(where, pod.requests, held_on, pod.counted_on)
        self.pods[key] = node
        if node:
            self.pod_requests[key] = pod.requests
            self._charge((node, pod.requests), +1)
            if where is not None:
                self._hold(key, node, where)
            elif node in self.holds_on and self._over(node):
                self._settle(node)  # bound where podtier held others: they move
        if pod.uses_node and key in self.mine:
            self.mine.discard(key)
            if held_for and held_on != node and self._crosses_shares(held_for, held_on, node):
                self._shadow(key, held_on, pod.requests, now + PEER_LAG)
                held_on = ""  # its room stays held
        if held_on and held_on != node:
            self._retry_overcommitted(held_on)
        return key

    def _hold_node(
        self, where: GroupKey, requests: Resources, held_on: str, counted_on: str
    ) -> str:
        """Where a waiting pod's hold goes: where it was, if that node is still in its group;
        else the node podtier counted its room on (any replica: `podtier.io/node`), if it is in
        the group and has that room; else a node with room; else the roomiest (overcommitted);
        "" for an empty group."""
        group = self._group(*where)
        if held_on and held_on in group.members:
            return held_on
        if counted_on in group.members and self.fits(counted_on, requests):
            return counted_on
        return group.find(requests) or group.roomiest(requests)

    # ------------------------------------------------------------------ reservations

    def reserve(
        self,
        node: str,
        requests: Mapping[str, int],
        key: str,
        expires: float,
        where: GroupKey | None = None,
    ) -> None:
        """Hold `requests` on `node` for pod `key` until it is seen or `expires` passes.
        A pod the watch already shows is counted already and gets no reservation. `where`,
        the (selector, tolerations) the node was found for, lets the hold move (see above)."""
        if key in self.pods:
            return
        self._drop_reservation(key)
        held = dict(requests)
        self.reservations[key] = Reservation(node, held, expires)
        self.mine.add(key)
        self._charge((node, held), +1)
        if where is not None:
            self._hold(key, node, where)

    def expire(self, now: float) -> int:
        """Release reservations and shadows whose time has passed; returns how many
        reservations lapsed."""
        reservations = self.reservations
        if not self.shadows and (
            not reservations or next(iter(reservations.values())).expires > now
        ):
            return 0  # nothing due (every transaction asks)
        expired = []
        for key, reservation in reservations.items():
            if reservation.expires > now:
                break  # insertion order is expiry order
            expired.append(key)
        freed = {self._drop_reservation(key) for key in expired}
        self.mine.difference_update(expired)  # never seen: the pod was not created
        for key in [k for k, shadow in self.shadows.items() if shadow.expires <= now]:
            shadow = self.shadows.pop(key)
            self._charge((shadow.node, shadow.requests), -1)
            freed.add(shadow.node)
        for node in freed:
            self._retry_overcommitted(node)
        return len(expired)

    def _crosses_shares(self, where: GroupKey, held_on: str, bound_to: str) -> bool:
        """A pod held on a node of this replica's share, bound outside it (see "Replicas")."""
        if self.share is None or self.share[1] < 2:
            return False
        shared = self._share_group(where).members
        return held_on in shared and bound_to not in shared

    def _shadow(self, key: str, node: str, requests: Resources, expires: float) -> None:
        self.shadows[key] = Reservation(node, requests, expires)
        self._charge((node, requests), +1)

    def _drop_reservation(self, key: str) -> str:
        """Release `key`'s reservation; the node it was on, or "" when there was none."""
        if key not in self.reservations:
            return ""
        self._unhold(key)
        reservation = self.reservations.pop(key)
        self._charge((reservation.node, reservation.requests), -1)
        return reservation.node

    # ------------------------------------------------------------------ holds that move

    def _hold(self, key: str, node: str, where: GroupKey) -> None:
        self.holds[key] = where
        self.holds_on.setdefault(node, {})[key] = None
        if self._over(node):
            self.overcommitted.setdefault(where, {})[key] = None

    def _unhold(self, key: str) -> None:
        where = self.holds.pop(key, None)
        if where is None:
            return
        node = self._held_node(key)
        keys = self.holds_on.get(node)
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self.holds_on[node]
        waiting = self.overcommitted.get(where)
        if waiting is not None:
            waiting.pop(key, None)
            if not waiting:
                del self.overcommitted[where]

    def _held_node(self, key: str) -> str:
        reservation = self.reservations.get(key)
        return reservation.node if reservation is not None else self.pods.get(key, "")

    def _move(self, key: str, to: str) -> None:
        """Move hold `key` to node `to` (its charge with it)."""
        where = self.holds[key]
        self._unhold(key)
        reservation = self.reservations.get(key)
        if reservation is not None:
            requests = reservation.requests
            self._charge((reservation.node, requests), -1)
            reservation.node = to
        else:
            requests = self.pod_requests[key]
            self._charge((self.pods[key], requests), -1)
            self.pods[key] = to
        self._charge((to, requests), +1)
        self._hold(key, to, where)

    def requests_of(self, key: str) -> Resources:
        """The requests of a held pod (a reservation, or a pod waiting in its pool)."""
        return self._requests_of(key)

    def _requests_of(self, key: str) -> Resources:
        reservation = self.reservations.get(key)
        return reservation.requests if reservation is not None else self.pod_requests[key]

    def _settle(self, node: str) -> None:
        """`node` is over its allocatable: move holds off it (newest first) to nodes with room,
        until it is not; a hold that fits nowhere stays, overcommitted."""
        for key in reversed(list(self.holds_on.get(node, ()))):
            if not self._over(node):
                return
            where = self.holds[key]
            target = self._group(*where).find(self._requests_of(key))
            if target is not None and target != node:
                self._move(key, target)
            else:
                self.overcommitted.setdefault(where, {})[key] = None

    def _evacuate(self, node: str) -> None:
        """`node` left every pool (deleted, cordoned, NotReady): its holds go elsewhere."""
        for key in list(self.holds_on.get(node, ())):
            where = self.holds[key]
            group = self._group(*where)
            requests = self._requests_of(key)
            target = group.find(requests) or group.roomiest(requests)
            if target:
                self._move(key, target)

    def _retry_overcommitted(self, node: str) -> None:
        """Capacity came back on `node`: waiting holds of groups that may use it move to a node
        with room, oldest first; each group stops at its first hold that still fits nowhere."""
        for where in list(self.overcommitted):
            group = self._group(*where)
            if node not in group.members:
                continue
            for key in list(self.overcommitted.get(where, ())):
                held = self._held_node(key)
                if not self._over(held):
                    self.overcommitted.get(where, {}).pop(key, None)
                    continue
                target = group.find(self._requests_of(key))
                if target is None or target == held:
                    break
                self._move(key, target)
            if not self.overcommitted.get(where):
                self.overcommitted.pop(where, None)

    def _over(self, node: str) -> bool:
        used = self.used.get(node)
        if not used:
            return False
        record = self.nodes.get(node)
        allocatable = record.allocatable if record is not None else {}
        for resource, value in used.items():  # a loop, not any(...): called on every reserve
            if value > 0 and value > allocatable.get(resource, 0):
                return True
        return False

    # ------------------------------------------------------------------ queries

    def free(self, node: str, resource: str) -> int:
        record = self.nodes.get(node)
        allocatable = record.allocatable.get(resource, 0) if record is not None else 0
        return allocatable - self.used.get(node, {}).get(resource, 0)

    def fits(self, node: str, requests: Mapping[str, int]) -> bool:
        return fits(self.nodes, self.used, node, requests)

    def find_node(
        self,
        node_selector: Mapping[str, str],
        tolerations: Sequence[Mapping[str, Any]],
        requests: Mapping[str, int],
    ) -> str | None:
        return self.find(*self.asked_key(node_selector, tolerations), requests)

    def asked_key(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> GroupKey:
        """`group_key`, remembered by the JSON of what was asked: the core asks the same few
        (a pod template's own tolerations plus its pool's) request after request, and parsing
        and sorting them cost more than the search."""
        try:
            asked = orjson.dumps((node_selector, tolerations))
        except TypeError:  # not plain JSON values: canonicalise every time
            return group_key(node_selector, tolerations)
        key = self._asked.get(asked)
        if key is None:
            if len(self._asked) >= _ASKED_LIMIT:
                self._asked.clear()
            key = self._asked[asked] = group_key(node_selector, tolerations)
        return key

    def find(
        self, selector: Selector, tolerations: tuple[Toleration, ...], requests: Mapping[str, int]
    ) -> str | None:
        """`find_node` for a group key already made (see `group_key`)."""
        return self._group(selector, tolerations).find(requests)

    def borrow(
        self,
        selector: Selector,
        tolerations: tuple[Toleration, ...],
        requests: Mapping[str, int],
        limit: int,
    ) -> tuple[str, int] | None:
        """For a replica whose share of every pool is full (see "Replicas"): a node of the group
        with room, and how many pods of `requests` the group could take, counted up to `limit`;
        None when no node has room. A scan of the group, asked only on that path.

        Room held by this replica's shadows counts as free here: a shadow keeps this replica
        from *promising* room a peer's unseen pod may need, but most are never claimed, and a
        borrowed placement is a best estimate, not a promise. So the node is one of this
        replica's own (room under its shadows, which no peer is promising now) when one has
        room, else any."""
        asked = [(resource, value) for resource, value in requests.items() if value > 0]
        shadowed: dict[str, dict[str, int]] = {}
        for shadow in self.shadows.values():
            held = shadowed.setdefault(shadow.node, {})
            for resource, value in shadow.requests.items():
                held[resource] = held.get(resource, 0) + value
        mine = self._share_group((selector, tolerations)).members
        best, total = "", 0
        for node in self._group(selector, tolerations).members:
            allocatable = self.nodes[node].allocatable
            used = self.used.get(node, {})
            back = shadowed.get(node, {})
            copies = min(
                (
                    (allocatable.get(r, 0) - used.get(r, 0) + back.get(r, 0)) // value
                    for r, value in asked
                ),
                default=limit,
            )
            if copies <= 0:
                continue
            total += copies
            if not best or (node in mine and best not in mine):
                best = node
            if total >= limit:
                break
        return (best, min(total, limit)) if best else None

    def find_in_share(
        self, selector: Selector, tolerations: tuple[Toleration, ...], requests: Mapping[str, int]
    ) -> str | None:
        """`find`, among this replica's share of the group's nodes only (for new placements)."""
        if self.share is None:
            return self.find(selector, tolerations, requests)
        return self._share_group((selector, tolerations)).find(requests)

    def _share_group(self, key: GroupKey) -> NodeGroup:
        """This replica's share of a group: its nodes sorted by name, every `count`-th from
        `index` (built on first use, dropped when the group's members change)."""
        shared = self._shares.get(key)
        if shared is None:
            index, count = self.share or (0, 1)
            shared = NodeGroup(*key, self.nodes, self.used)
            for name in sorted(self._group(*key).members)[index::count]:
                shared.members[name] = None
            self._shares[key] = shared
        return shared

    def set_share(self, share: tuple[int, int] | None) -> None:
        """Promise only from every `count`-th node of each group, from `index` (None: all)."""
        if share != self.share:
            self.share = share
            self._shares.clear()

    def eligible_nodes(
        self, node_selector: Mapping[str, str], tolerations: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """The nodes a pod with this selector and these tolerations may use (for explanations)."""
        return list(self._group(*self.asked_key(node_selector, tolerations)).members)

    # ------------------------------------------------------------------ index upkeep

    def _group(self, selector: Selector, tolerations: tuple[Toleration, ...]) -> NodeGroup:
        group = self._groups.get((selector, tolerations))
        if group is None:
            group = NodeGroup(selector, tolerations, self.nodes, self.used)
            for name, node in self.nodes.items():
                if group.admits(node):
                    group.members[name] = None
            self._groups[(selector, tolerations)] = group
        return group

    def _refresh_groups(self, name: str) -> None:
        node = self.nodes.get(name)
        for key, group in self._groups.items():
            was_member = name in group.members
            if node is not None and group.admits(node):
                group.members[name] = None
                group.freed.add(name)
            else:
                group.members.pop(name, None)
            if was_member != (name in group.members):
                self._shares.pop(key, None)  # the split of the group's nodes changes
        for shared in self._shares.values():
            if name in shared.members:
                shared.freed.add(name)

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
        for groups in (self._groups, self._shares):
            for group in groups.values():
                if node in group.members:
                    group.freed.add(node)
