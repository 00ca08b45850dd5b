"""Wait or spill: when a pod's first pool has no room now, how long until it has. Pure: the
moment is the outlook's (`PoolOutlook.at`, passed in by the edge), never a clock.

    first pool full ─► expected wait = the smaller of
        (a) provisionSeconds, when the pool autoscales and can still grow by a node that fits
            the pod, beyond the pods already waiting there
        (b) when pods running on its nodes finish and leave room there for the pods already
            waiting and this one, from their tasks' learned run times and start times: the
            longest of the task's last runs (`TaskProfile.last_runs`), else its mean run
            (`run_seconds`, the sum of all its runs, over `runs`)
    ─► within the tier's maxWaitSeconds: pinned to the first pool, it waits
       (the scaling signal counts it); past it, or with no figure: spill or step down as before

The longest recent run, not the mean, so that a pod waits for room that comes: a run of 40 min
that takes 15% longer than its mean frees room 6 min later than the mean says.

Figures that cannot be trusted are left out, with a warning, rather than sending a pod to wait
for them: a pool already over its maxNodes cannot grow, a learned run time that is not a number,
negative or over a week is ignored, and a task running more than twice its run time is no guide
to when it ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podtier.webhook.core.capacity import CapacityView, PoolOutlook, RunningPod
from podtier.webhook.core.placement import Placement, pod_node_selector, pod_tolerations
from podtier.webhook.core.policy import Pool, Tier
from podtier.webhook.core.profile import ProfilesView, TaskKey, TaskProfile
from podtier.webhook.core.resources import POD_SLOT, covers

MAX_RUN_SECONDS = 7 * 86_400.0  # a learned run time above a week is taken as garbage
OVERDUE_FACTOR = 2.0  # a task running this many times its run time: no estimate
NODE_POD_SLOTS = 110_000  # a new node's pods (milli-units), the kubelet's default


@dataclass(frozen=True)
class Wait:
    seconds: float
    node: str | None  # the node that frees room; None for a new node
    # "node c-1 frees room in ~40 s (task etl.load runs up to ~6 min, started 5.3 min ago)"
    why: str


@dataclass(frozen=True)
class Outlook:
    wait: Wait | None  # the soonest room, or None when nothing says when
    warnings: tuple[str, ...]


def expected_wait(
    pool: Pool,
    requests: Mapping[str, int],
    outlook: PoolOutlook,
    profiles: ProfilesView | None,
) -> Outlook:
    """When `pool` is expected to have room for a pod of `requests` (milli-units), behind the
    pods already waiting there (`PoolOutlook.held` that do not fit now, each taken as one pod
    of this size).

    Room comes in steps: a running pod ends (its node gets its requests back), or the new
    nodes come (`provisionSeconds`, as many as `maxNodes` allows). At each step, in time order,
    count how many pods of this size the pool's room takes; the pod's wait is the first step
    at which that covers the pods ahead of it and itself."""
    warnings: list[str] = []
    room = {node: {k: max(0, v) for k, v in free.items()} for node, free in outlook.free.items()}
    ahead = _take_held(room, outlook.held)
    runs = _run_times(outlook.running, profiles, warnings)
    steps: list[tuple[float, int, int]] = []  # (seconds, 0: a pod ends / 1: nodes come, pod)
    for i, running in enumerate(outlook.running):
        run = runs.get(running.task) if running.task is not None else None
        if run is None or running.started_at is None:
            continue
        elapsed = max(0.0, outlook.at - running.started_at)
        if elapsed <= OVERDUE_FACTOR * run:  # past that, its run time says nothing of its end
            steps.append((max(0.0, run - elapsed), 0, i))
    new_nodes = _new_nodes(pool, requests, outlook, warnings)
    if new_nodes:
        assert pool.autoscaling is not None
        steps.append((pool.autoscaling.provision_seconds, 1, -1))
    steps.sort()
    slots = sum(_pods_per_node(free, requests) for free in room.values())
    for seconds, kind, i in steps:
        if kind == 1:
            slots += new_nodes
        else:
            pod = outlook.running[i]
            before = _pods_per_node(room[pod.node], requests) if pod.node in room else 0
            free = room.setdefault(pod.node, {})
            for name, value in pod.requests.items():
                free[name] = free.get(name, 0) + value
            slots += _pods_per_node(free, requests) - before
        if slots > ahead:
            behind = f", behind {ahead} waiting pod{'s' if ahead > 1 else ''}" if ahead else ""
            if kind == 1:
                why = f"it can add a node (~{_duration(seconds)}{behind})"
                return Outlook(Wait(seconds, None, why), tuple(warnings))
            pod = outlook.running[i]
            assert pod.task is not None
            why = _frees(pod.node, seconds, pod, runs[pod.task], outlook.at) + behind
            return Outlook(Wait(seconds, pod.node, why), tuple(warnings))
    return Outlook(None, tuple(warnings))


def _new_nodes(
    pool: Pool, requests: Mapping[str, int], outlook: PoolOutlook, warnings: list[str]
) -> int:
    """How many pods of `requests` the nodes the pool may still add would take."""
    scaling = pool.autoscaling
    if scaling is None:
        return 0
    nodes = len(outlook.free)
    if nodes > scaling.max_nodes:
        warnings.append(
            f"podtier: pool {pool.name} has {nodes} nodes, above its autoscaling.maxNodes "
            f"{scaling.max_nodes}: it is taken as unable to grow"
        )
        return 0
    shape = {POD_SLOT: NODE_POD_SLOTS, **scaling.node_milli()}
    return (scaling.max_nodes - nodes) * _pods_per_node(shape, requests)


def _pods_per_node(free: Mapping[str, int], requests: Mapping[str, int]) -> int:
    counts = [max(0, free.get(name, 0)) // value for name, value in requests.items() if value > 0]
    return min(counts) if counts else 0


def _take_held(room: dict[str, dict[str, int]], held: Sequence[Mapping[str, int]]) -> int:
    """Give the held pods their room, oldest first (first fit): those that fit are about to
    bind; returns how many do not (the pods waiting ahead). Only nodes with room for the
    smallest held pod are looked at, so a full pool costs one pass, not one per held pod."""
    if not held:
        return 0
    smallest = {name: min(r.get(name, 0) for r in held) for name in set().union(*held)}
    candidates = [node for node, free in room.items() if covers(free, smallest)]
    ahead = 0
    for requests in held:
        node = next((n for n in candidates if covers(room[n], requests)), None)
        if node is None:
            ahead += 1
            continue
        free = room[node]
        for name, value in requests.items():
            free[name] = free.get(name, 0) - value
        if not covers(free, smallest):
            candidates.remove(node)
    return ahead


def _run_times(
    running: Sequence[RunningPod], profiles: ProfilesView | None, warnings: list[str]
) -> dict[TaskKey, float]:
    """The learned run time of each task running here that has one to trust (seconds)."""
    return _learned_runs({pod.task for pod in running if pod.task is not None}, profiles, warnings)


def _learned_runs(
    tasks: Iterable[TaskKey], profiles: ProfilesView | None, warnings: list[str]
) -> dict[TaskKey, float]:
    """The run time of each of `tasks` that has one learned and to trust (seconds); one that is
    not a run time is left out with a warning."""
    if profiles is None or not profiles.status.known:
        return {}
    runs: dict[TaskKey, float] = {}
    for task in tasks:
        profile = profiles.get(task)
        run = None if profile is None else run_time(profile)
        if run is None:
            continue  # no run time learned yet
        if not math.isfinite(run) or run <= 0 or run > MAX_RUN_SECONDS:
            warnings.append(
                f"podtier: task {task.dag}.{task.task}'s learned run time {run!r} s is not a "
                "run time; not used to judge when its node frees room"
            )
            continue
        runs[task] = run
    return runs


def run_time(profile: TaskProfile) -> float | None:
    """How long a run of the task takes at most, as far as its history says: the longest of
    its last runs that ran to the end (not OOM-killed), else its mean run; None when it has
    none. Not checked for sense (see `_run_times`)."""
    finished = [
        record.run_seconds
        for record in profile.last_runs
        if record.run_seconds is not None and not record.oom_killed
    ]
    if finished:  # a NaN among them is the one returned, for `_run_times` to reject
        return max(finished, key=lambda seconds: (math.isnan(seconds), seconds))
    if profile.runs <= 0 or profile.run_seconds == 0:
        return None
    return profile.run_seconds / profile.runs


def _frees(node: str, seconds: float, pod: RunningPod, run: float, at: float) -> str:
    assert pod.task is not None and pod.started_at is not None
    ago = _duration(max(0.0, at - pod.started_at), minutes_decimal=True)
    return (
        f"node {node} frees room in ~{_duration(seconds)} (task {pod.task.dag}.{pod.task.task} "
        f"runs up to ~{_duration(run)}, started {ago} ago)"
    )


def _duration(seconds: float, minutes_decimal: bool = False) -> str:
    """40 s, 6 min, 5.3 min, 2.5 h: as a person says a wait."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        minutes = seconds / 60
        return f"{minutes:.1f} min" if minutes_decimal else f"{minutes:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Waiting:
    """A pod pinned to a pool with no room now, and the node to hold its room on while it
    waits (the node expected to free it, or the roomiest until a new node comes)."""

    placement: Placement
    hold_on: str | None


@dataclass(frozen=True)
class WaitChoice:
    """What the decision does when the first pool has no room now."""

    first: Waiting | None  # it waits for its first pool; None: spill as before
    # No pool has room now and the first's is too far or unknown: the pool whose room comes
    # soonest, where it waits unless a lower tier fits now; None: it pends in the first pool.
    sooner: Waiting | None
    note: str  # why it does not wait for the first pool, for the reason ("" when it does)
    warnings: tuple[str, ...]


def wait_or_spill(
    tier: Tier,
    pools: Sequence[Pool],
    placement: Placement,
    requests: Mapping[str, int],
    node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    capacity: CapacityView,
    profiles: ProfilesView | None,
    task: TaskKey | None = None,
) -> WaitChoice | None:
    """None when the tier never waits, headroom is unknown, or the first pool has room.

    Within the tier's maxWaitSeconds the pod waits for its first pool (`first`). Else, when a
    later pool has room now, it spills there as before; when no pool has room now, it waits
    wherever it goes, and goes to a later pool (`sooner`) only when room comes there sooner by
    more than maxWaitSeconds plus the pod's own learned run time (`task`'s): running a short
    task in a dearer pool costs little, a long one is worth its wait for the cheaper pool.
    When nothing says when the first pool frees room, only a pod that runs within
    maxWaitSeconds goes elsewhere. Without a run time of its own it stays with the first."""
    first = pools[0]
    if tier.max_wait_seconds is None or not capacity.status.known:
        return None
    if placement.fits and placement.pool.name == first.name:
        return None
    warnings: list[str] = []
    soonest = _soonest(first, requests, node_selector, tolerations, capacity, profiles, warnings)
    limit = tier.max_wait_seconds
    if soonest is not None and soonest[0].seconds <= limit:
        return WaitChoice(_waiting(first, *soonest, requests), None, "", tuple(warnings))
    wait = soonest[0] if soonest is not None else None
    if wait is None:
        note = f"nothing says when {first.name} frees room"
    else:
        note = (
            f"{first.name} frees room in ~{_duration(wait.seconds)} at the soonest, over the "
            f"tier's maxWaitSeconds {limit:g}"
        )
    sooner = None
    own = _own_run(task, profiles)
    if not placement.fits and own is not None:  # it waits wherever it goes
        # Elsewhere only when room comes sooner there by more than the tier's wait and the
        # pod's own run (a short run is cheap in a dearer pool, a long one worth the wait);
        # when nothing says when the first pool frees room, only a run within the tier's wait.
        if wait is not None:
            best = wait.seconds - (limit + own)
        else:
            best = math.inf if own <= limit else -1.0
        for pool in pools[1:]:
            found = _soonest(
                pool, requests, node_selector, tolerations, capacity, profiles, warnings
            )
            if found is not None and found[0].seconds < best:
                best, sooner = found[0].seconds, _waiting(pool, *found, requests)
    return WaitChoice(None, sooner, note, tuple(warnings))


def _own_run(task: TaskKey | None, profiles: ProfilesView | None) -> float | None:
    """The pod's own task's run time, when it has one to trust (no warning of its own)."""
    return None if task is None else _learned_runs((task,), profiles, []).get(task)


def _soonest(
    pool: Pool,
    requests: Mapping[str, int],
    node_selector: Mapping[str, str],
    tolerations: Sequence[Mapping[str, Any]],
    capacity: CapacityView,
    profiles: ProfilesView | None,
    warnings: list[str],
) -> tuple[Wait, PoolOutlook] | None:
    """When `pool` has room for the pod, and what it looks like now; None when nothing says."""
    picture = capacity.outlook(
        pod_node_selector(node_selector, pool), pod_tolerations(tolerations, pool)[0]
    )
    if picture is None:
        return None
    outlook = expected_wait(pool, requests, picture, profiles)
    warnings += [w for w in outlook.warnings if w not in warnings]
    return None if outlook.wait is None else (outlook.wait, picture)


def _waiting(pool: Pool, wait: Wait, picture: PoolOutlook, requests: Mapping[str, int]) -> Waiting:
    placement = Placement(pool, None, False, f"waits for {pool.name}: {wait.why}")
    return Waiting(placement, wait.node or _roomiest(picture, requests))


def _roomiest(picture: PoolOutlook, requests: Mapping[str, int]) -> str | None:
    """The node with the most free of the pod's first resource (its hold, until a node comes)."""
    name = next((n for n, v in requests.items() if v > 0 and n != POD_SLOT), POD_SLOT)
    return max(picture.free, key=lambda node: (picture.free[node].get(name, 0), node), default=None)
