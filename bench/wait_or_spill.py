"""Replay of a day of Airflow task runs on pools that autoscale: always spill, always wait, and
podtier's choice (`core.waiting.wait_or_spill`, the decision's own code) compared on task wait
(p50, p95), makespan, and cost.

    python bench/wait_or_spill.py [--seed 1] [--mix NAME]...

The cluster (simulated, 5 s steps): two pools that autoscale as cluster-autoscaler does. A node
is asked for when pods pend for its pool and no node being made will take them, is Ready
`provisionSeconds` later, and goes after `idle` seconds without pods (down to `minNodes`).

    compute  8 cpu, 32Gi nodes  (4 heavy pods)   cpu 0.034/h  memory 0.0045/GiB·h
    worker  16 cpu, 64Gi nodes  (8 heavy pods)   cpu 0.048/h  memory 0.0060/GiB·h

Heavy tasks (2 cpu, 4Gi) go to compute first and may spill to worker; medium (1 cpu, 2Gi) and
light (250m, 512Mi) tasks go to worker only. A pod is placed once, at admission (as podtier
does), and pends in that pool until a node there takes it. Each task has a run time; each run
is that times 0.85..1.15. podtier knows a task by its TaskProfile as the learner keeps it: the
sum of its runs and its last 10 runs, from a day before (10 runs) and then from each run of
the replay as it ends.

    always spill   heavy pod: compute if a compute node has room now, else worker if a worker
                   node has room now, else it pends for compute (podtier without maxWaitSeconds)
    always wait    heavy pod: compute, always (pends until compute has room)
    podtier        compute if room now; else `wait_or_spill` with the tier's maxWaitSeconds: it
                   waits for compute when a node there frees room, or a new one comes, in time;
                   else worker if a worker node has room now; else (no room anywhere) worker
                   when room comes there sooner by more than maxWaitSeconds plus the pod's own
                   run (or, when nothing says when compute frees room, the run is within
                   maxWaitSeconds); else it pends for compute

Cost C = sum over pods of requests x the pool's prices x run time (`podtier report`'s C); node
cost is what the nodes cost while they exist (made, idle or busy), for comparison.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from podtier.webhook.core.capacity import HeadroomStatus, PoolOutlook, RunningPod  # noqa: E402
from podtier.webhook.core.placement import Placement  # noqa: E402
from podtier.webhook.core.policy import Autoscaling, Pool, Quantity, Tier  # noqa: E402
from podtier.webhook.core.profile import (  # noqa: E402
    ProfilesStatus,
    RunRecord,
    TaskKey,
    TaskProfile,
    task_key,
)
from podtier.webhook.core.waiting import wait_or_spill  # noqa: E402

STEP = 5.0
DAY = 86_400.0
GI = 2**30
MILLI_GI = GI * 1000
SIZES = {  # tier -> (cpu milli, memory milli-units)
    "heavy": (2000, 4 * MILLI_GI),
    "medium": (1000, 2 * MILLI_GI),
    "light": (250, MILLI_GI // 2),
}
PRICES = {"compute": (0.034, 0.0045), "worker": (0.048, 0.0060)}  # per cpu·h, per GiB·h


@dataclass(frozen=True)
class PoolShape:
    name: str
    cpu: int  # milli
    memory: int  # milli-units
    min_nodes: int
    max_nodes: int
    provision: float
    idle: float = 300.0


@dataclass(frozen=True)
class Mix:
    name: str
    about: str
    compute: PoolShape
    worker: PoolShape
    max_wait: float
    heavy_runs: tuple[float, ...]  # run times of the heavy tasks (seconds), one task each
    bursts_per_day: int  # DAG runs a day, each submitting every task once
    medium_tasks: int
    light_tasks: int
    background_per_hour: float  # extra heavy runs a hour, at random times


def compute(max_nodes: int = 6, provision: float = 90.0) -> PoolShape:
    return PoolShape("compute", 8000, 32 * MILLI_GI, 1, max_nodes, provision)


def worker(max_nodes: int = 12, provision: float = 120.0) -> PoolShape:
    return PoolShape("worker", 16000, 64 * MILLI_GI, 2, max_nodes, provision)


HOURLY_ETL = Mix(
    "hourly-etl",
    "24 DAG runs: 16 heavy tasks of 3-20 min, 24 medium, 24 light each",
    compute(),
    worker(),
    120,
    (180, 240, 300, 360, 420, 480, 600, 720, 900, 1200) * 2 + (300, 600, 900, 1200),
    24,
    24,
    24,
    4,
)
MIXES = {
    "hourly-etl": HOURLY_ETL,
    "slow-nodes": replace(
        HOURLY_ETL,
        name="slow-nodes",
        about="as hourly-etl, compute nodes take 5 min to come (over maxWaitSeconds 120)",
        compute=compute(provision=300),
    ),
    "capped-compute": Mix(
        "capped-compute",
        "compute capped at 2 nodes, heavy tasks of 2-40 min",
        compute(max_nodes=2),
        worker(),
        120,
        (120, 150, 180, 240, 600, 1200, 2400) * 3,
        24,
        16,
        16,
        6,
    ),
    "short-heavy": Mix(
        "short-heavy",
        "many short heavy tasks (1-3 min), compute up to 3 nodes: finishing tasks free room",
        compute(max_nodes=3),
        worker(),
        120,
        (60, 75, 90, 120, 150, 180) * 5,
        48,
        12,
        12,
        20,
    ),
}


@dataclass
class Node:
    name: str
    pool: str
    ready_at: float
    free: dict[str, int]
    pods: dict[int, Run] = field(default_factory=dict)
    idle_since: float = 0.0
    born: float = 0.0


@dataclass
class Run:
    ident: int
    task: str
    tier: str
    submit: float
    run: float
    pool: str = ""
    start: float | None = None
    end: float | None = None
    node: str = ""

    @property
    def requests(self) -> dict[str, int]:
        cpu, memory = SIZES[self.tier]
        return {"cpu": cpu, "memory": memory, "pods": 1000}


def workload(mix: Mix, seed: int) -> tuple[list[Run], dict[str, float]]:
    """The day's runs (by submit time) and each task's learned run time."""
    rng = random.Random(seed)
    learned: dict[str, float] = {}
    tasks: list[tuple[str, str]] = []
    for i, run in enumerate(mix.heavy_runs):
        name = f"heavy_{i:02d}"
        learned[name] = run
        tasks.append((name, "heavy"))
    for i in range(mix.medium_tasks):
        name = f"medium_{i:02d}"
        learned[name] = rng.choice((120, 300, 600, 900))
        tasks.append((name, "medium"))
    for i in range(mix.light_tasks):
        name = f"light_{i:02d}"
        learned[name] = rng.choice((30, 60, 120, 300))
        tasks.append((name, "light"))
    runs: list[Run] = []
    for b in range(mix.bursts_per_day):
        at = b * DAY / mix.bursts_per_day
        for name, tier in tasks:
            offset = rng.uniform(0, 60)  # the scheduler's loop submits them over a minute
            runs.append(Run(0, name, tier, at + offset, learned[name] * rng.uniform(0.85, 1.15)))
    heavy = [name for name, tier in tasks if tier == "heavy"]
    for _ in range(int(mix.background_per_hour * 24)):
        name = rng.choice(heavy)
        runs.append(
            Run(0, name, "heavy", rng.uniform(0, DAY), learned[name] * rng.uniform(0.85, 1.15))
        )
    runs.sort(key=lambda r: r.submit)
    for i, run in enumerate(runs):
        run.ident = i
    return runs, learned


def policy_pool(shape: PoolShape) -> Pool:
    node = {
        "cpu": Quantity(str(shape.cpu // 1000), shape.cpu),
        "memory": Quantity("", shape.memory),
    }
    autoscaling = Autoscaling(shape.max_nodes, node, shape.provision)
    return Pool(shape.name, {"pool": shape.name}, (), autoscaling=autoscaling)


class Cluster:
    def __init__(self, mix: Mix) -> None:
        self.shapes = {"compute": mix.compute, "worker": mix.worker}
        self.nodes: dict[str, Node] = {}
        self.pending: dict[str, list[Run]] = {"compute": [], "worker": []}
        self.node_seconds: dict[str, float] = {"compute": 0.0, "worker": 0.0}
        self.finished: list[Run] = []  # the runs that ended since the learner last looked
        self._count = 0
        for shape in self.shapes.values():
            for _ in range(shape.min_nodes):
                self.add_node(shape, 0.0, 0.0)

    def add_node(self, shape: PoolShape, now: float, ready_at: float) -> None:
        self._count += 1
        name = f"{shape.name[0]}-{self._count}"
        free = {"cpu": shape.cpu, "memory": shape.memory, "pods": 110_000}
        self.nodes[name] = Node(name, shape.name, ready_at, free, idle_since=ready_at, born=now)

    def ready(self, pool: str, now: float) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.pool == pool and n.ready_at <= now)

    def fits_now(self, pool: str, requests: Mapping[str, int], now: float) -> Node | None:
        for node in self.ready(pool, now):
            if all(node.free.get(k, 0) >= v for k, v in requests.items()):
                return node
        return None

    def start(self, run: Run, node: Node, now: float) -> None:
        for key, value in run.requests.items():
            node.free[key] -= value
        node.pods[run.ident] = run
        run.start, run.node, run.end = now, node.name, now + run.run

    def step(self, now: float) -> None:
        for node in list(self.nodes.values()):
            for ident, run in list(node.pods.items()):
                if run.end is not None and run.end <= now:
                    del node.pods[ident]
                    self.finished.append(run)
                    for key, value in run.requests.items():
                        node.free[key] += value
                    if not node.pods:
                        node.idle_since = now
        for pool, queue in self.pending.items():
            left = []
            for run in queue:
                node = self.fits_now(pool, run.requests, now)
                if node is None:
                    left.append(run)
                else:
                    self.start(run, node, now)
            self.pending[pool] = left
        self.autoscale(now)
        for name, node in list(self.nodes.items()):
            self.node_seconds[node.pool] += STEP
            shape = self.shapes[node.pool]
            count = sum(1 for n in self.nodes.values() if n.pool == node.pool)
            if (
                not node.pods
                and node.ready_at <= now
                and now - node.idle_since >= shape.idle
                and count > shape.min_nodes
                and not self.pending[node.pool]
            ):
                del self.nodes[name]

    def autoscale(self, now: float) -> None:
        """As cluster-autoscaler: nodes for the pods that pend and no node being made takes."""
        for pool, queue in self.pending.items():
            if not queue:
                continue
            shape = self.shapes[pool]
            coming = [n for n in self.nodes.values() if n.pool == pool and n.ready_at > now]
            room = {n.name: dict(n.free) for n in coming}
            need = []
            for run in queue:
                spot = next(
                    (r for r in room.values() if all(r[k] >= v for k, v in run.requests.items())),
                    None,
                )
                if spot is None:
                    need.append(run)
                else:
                    for k, v in run.requests.items():
                        spot[k] -= v
            count = sum(1 for n in self.nodes.values() if n.pool == pool)
            while need and count < shape.max_nodes:
                self.add_node(shape, now, now + shape.provision)
                count += 1
                free = {"cpu": shape.cpu, "memory": shape.memory, "pods": 110_000}
                need = [
                    r
                    for r in need
                    if not (
                        all(free[k] >= v for k, v in r.requests.items())
                        and not any(free.__setitem__(k, free[k] - v) for k, v in r.requests.items())
                    )
                ]

    def outlook(self, pool: str, now: float) -> PoolOutlook:
        """What the tracker would tell: ready nodes' free room, the pods waiting in the pool
        (podtier holds them), and the running pods."""
        nodes = list(self.ready(pool, now))
        free = {n.name: dict(n.free) for n in nodes}
        held = tuple(run.requests for run in self.pending[pool])
        running = tuple(
            RunningPod(n.name, task_key("airflow", "etl", r.task), r.start, r.requests)
            for n in nodes
            for r in n.pods.values()
        )
        return PoolOutlook(now, free, running, held)


class SimView:
    def __init__(self, cluster: Cluster, now: float) -> None:
        self.status = HeadroomStatus(True, "simulated")
        self._cluster, self._now = cluster, now

    def outlook(self, node_selector: Mapping[str, str], tolerations: Any) -> PoolOutlook:
        return self._cluster.outlook(node_selector["pool"], self._now)


class Learned:
    """The TaskProfiles as the learner keeps them (`ProfilesView`): each task's runs summed and
    its last 10, from a day before and then each run of the replay as it ends."""

    status = ProfilesStatus(True, "simulated")

    def __init__(self, learned: Mapping[str, float], seed: int) -> None:
        rng = random.Random(seed + 1)
        self._last: dict[TaskKey, deque[float]] = {}
        self._sum: dict[TaskKey, tuple[int, float]] = {}
        for name, seconds in learned.items():
            key = task_key("airflow", "etl", name)
            self._last[key] = deque(maxlen=10)
            self._sum[key] = (0, 0.0)
            for _ in range(10):
                self.ran(key, seconds * rng.uniform(0.85, 1.15))

    def ran(self, key: TaskKey, seconds: float) -> None:
        self._last[key].append(seconds)
        runs, total = self._sum[key]
        self._sum[key] = (runs + 1, total + seconds)

    def get(self, key: TaskKey) -> TaskProfile | None:
        if key not in self._sum:
            return None
        runs, total = self._sum[key]
        last = tuple(
            RunRecord("run", 1, -1, 0, "", False, s, 0.0, None, None, None) for s in self._last[key]
        )
        return TaskProfile(
            "airflow", key.task, key.dag, key.task, runs, run_seconds=total, last_runs=last
        )


def replay(mix: Mix, strategy: str, seed: int) -> dict[str, float]:
    runs, learned = workload(mix, seed)
    cluster = Cluster(mix)
    pools = (policy_pool(mix.compute), policy_pool(mix.worker))
    heavy = Tier("heavy", {}, {}, ("compute", "worker"), max_wait_seconds=mix.max_wait)
    profiles = Learned(learned, seed)
    waited = 0
    i, now = 0, 0.0
    while (
        i < len(runs)
        or any(cluster.pending.values())
        or any(n.pods for n in cluster.nodes.values())
    ):
        while i < len(runs) and runs[i].submit <= now:
            run = runs[i]
            i += 1
            run.pool = place(run, strategy, cluster, pools, heavy, profiles, now)
            waited += (
                run.pool == "compute" and cluster.fits_now("compute", run.requests, now) is None
            )
            cluster.pending[run.pool].append(run)
        cluster.step(now)
        for run in cluster.finished:
            profiles.ran(task_key("airflow", "etl", run.task), run.run)
        cluster.finished.clear()
        now += STEP
    return figures(runs, cluster, waited)


def place(
    run: Run,
    strategy: str,
    cluster: Cluster,
    pools: Sequence[Pool],
    heavy: Tier,
    profiles: Learned,
    now: float,
) -> str:
    if run.tier != "heavy":
        return "worker"
    if strategy == "always wait" or cluster.fits_now("compute", run.requests, now):
        return "compute"
    spill = cluster.fits_now("worker", run.requests, now)
    if strategy == "podtier":
        placement = (
            Placement(pools[1], spill.name, True, "")
            if spill
            else Placement(pools[0], None, False, "")
        )
        choice = wait_or_spill(
            heavy,
            pools,
            placement,
            run.requests,
            {},
            (),
            SimView(cluster, now),
            profiles,
            task_key("airflow", "etl", run.task),
        )
        if choice is not None and choice.first is not None:
            return "compute"
        if choice is not None and choice.sooner is not None and not spill:
            return choice.sooner.placement.pool.name
    return "worker" if spill else "compute"


def figures(runs: Sequence[Run], cluster: Cluster, waited: int) -> dict[str, float]:
    waits = sorted(r.start - r.submit for r in runs if r.start is not None)
    heavy = sorted(r.start - r.submit for r in runs if r.start is not None and r.tier == "heavy")
    cost = 0.0
    for r in runs:
        cpu, memory = PRICES[r.pool]
        hours = r.run / 3600
        cost += (r.requests["cpu"] / 1000 * cpu + r.requests["memory"] / MILLI_GI * memory) * hours
    node_cost = 0.0
    for pool, seconds in cluster.node_seconds.items():
        shape = cluster.shapes[pool]
        cpu, memory = PRICES[pool]
        node_cost += (shape.cpu / 1000 * cpu + shape.memory / MILLI_GI * memory) * seconds / 3600
    return {
        "p50": percentile(waits, 50),
        "p95": percentile(waits, 95),
        "heavy p95": percentile(heavy, 95),
        "makespan h": (max(r.end or 0 for r in runs) - min(r.submit for r in runs)) / 3600,
        "C": cost,
        "node cost": node_cost,
        "to compute": sum(r.pool == "compute" for r in runs if r.tier == "heavy")
        / max(1, sum(r.tier == "heavy" for r in runs)),
        "waited": waited,
        "runs": len(runs),
    }


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else 0.0
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", action="append", choices=sorted(MIXES))
    parser.add_argument(
        "--max-wait",
        type=float,
        action="append",
        help="also run podtier with this maxWaitSeconds (repeat; default 30, 60 and 180)",
    )
    args = parser.parse_args(argv)
    header = (
        f"{'mix':<15} {'strategy':<13} {'runs':>5} {'wait p50':>9} {'wait p95':>9} "
        f"{'heavy p95':>10} {'makespan':>9} {'C':>8} {'node cost':>10} {'heavy->compute':>15}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for name in args.mix or list(MIXES):
        mix = MIXES[name]
        rows = {s: replay(mix, s, args.seed) for s in ("always spill", "always wait", "podtier")}
        for seconds in args.max_wait or (30, 60, 180):
            rows[f"podtier {seconds:g}s"] = replay(
                replace(mix, max_wait=seconds), "podtier", args.seed
            )
        for strategy, f in rows.items():
            print(
                f"{name:<15} {strategy:<13.13} {f['runs']:>5.0f} {f['p50']:>7.0f} s "
                f"{f['p95']:>7.0f} s {f['heavy p95']:>8.0f} s {f['makespan h']:>7.2f} h "
                f"{f['C']:>8.2f} {f['node cost']:>10.2f} {f['to compute']:>14.0%}"
            )
        best = min(rows["always spill"]["p95"], rows["always wait"]["p95"])
        spill_cost = rows["always spill"]["C"]
        for strategy, ours in rows.items():
            if not strategy.startswith("podtier"):
                continue
            p95_ok = ours["p95"] <= best + STEP  # the simulation's resolution
            cost_ok = ours["C"] <= spill_cost + 1e-9
            wait = strategy.removeprefix("podtier").strip() or f"{mix.max_wait:g}s"
            verdicts.append(
                f"{name:<15} maxWait {wait:>5}: p95 {ours['p95']:>4.0f} s vs the better of the "
                f"two {best:>4.0f} s: {'no worse' if p95_ok else 'WORSE   '}; "
                f"C {ours['C']:.2f} vs always spill {spill_cost:.2f} "
                f"({(ours['C'] / spill_cost - 1):+.1%}): "
                f"{'no costlier' if cost_ok else 'COSTLIER'}"
            )
        print(f"  {mix.about}; maxWaitSeconds {mix.max_wait:g}")
    print()
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
