"""Replay of synthetic Airflow task runs with known usage, through podtier's own decision and
learning code: what the pods request, what they leave idle, how often they are OOM killed, and
how soon each task is sized from its history, for several mixes of tasks.

    python bench/learning_replay.py [--tasks 50] [--days 20] [--seed 7] [--mix NAME ...]
        [--baseline by-limit|by-request|unlabelled|all]

Each of `--tasks` tasks runs once a day for `--days` days (50 x 20 = 1,000 task runs). A task
has a nominal cpu p95 and memory peak; each run uses them times a uniform 0.9..1.1. Over a run
the task's cpu averages 0.7 x its p95 and its working set 0.8 x its peak. Classes:

    light      cpu  60-180m   memory  150-700Mi   10-30 min
    medium     cpu 350-800m   memory 1000-2800Mi  20-60 min
    heavy-cpu  cpu 1.2-1.6    memory 1000-3000Mi  30-90 min
    heavy-mem  cpu 300-800m   memory 4600-5800Mi  30-90 min (OOMKilled at medium's 4Gi limit)

Mixes (shares of the tasks): `default` light 40%, medium 25%, heavy-cpu 20%, heavy-mem 15%;
`memory-heavy` half the tasks need > 4Gi and < 1 cpu (heavy-mem 50%, light 20%, medium 20%,
heavy-cpu 10%); `cpu-heavy` heavy-cpu 50%, light 20%, medium 20%, heavy-mem 10%.

Four ways to size the same runs (the same usage draws), each decided by `core.decide` under
the default policy:
- rules: the policy alone, no learning;
- learning: `rightSizing: apply` with `sizing: resources` (the default), profiles as the writer
  would have them (`learning.fold` of every finished pod, its usage sampled exactly);
- by tier: the same with `sizing: tier` (the whole-tier recommendation of before);
- oracle: every pod sized from the task's true figures (its cpu p95 over runs, 1.09 x nominal,
  and its memory peak, 1.1 x nominal) through the same sizing code, margins and rounding.

Baselines (what the rules are given): `by-limit` (the default): each task's pods carry the tier
its owners picked by hand, the smallest tier whose cpu request covers its cpu p95 and whose
memory limit holds its peak (the tiers of the default policy request half their memory limit,
so such pods request less memory than they use); `by-request`: the smallest tier whose requests
cover its cpu p95 and memory peak (heavy when none does), as `podtier` classifies a pod by its
requests; `unlabelled`: every pod asks for nothing (the policy default, medium; heavy-mem tasks
fail under the rules alone). A pod whose peak exceeds its memory limit
is OOMKilled part way and retried (Airflow's retries: up to 3 tries). No cluster: headroom
unknown, first pool.

Idle is requested but unused: cpu·h = (cpu request - mean cpu used) x hours, GiB·h = (memory
request - mean working set) x hours, never below zero per pod; used-but-unrequested cpu·h is the
other side (a pod that asks for too little), and so is used-but-unrequested GiB·h: memory a
pod holds beyond its request, which its node may not have (the tiers of the default policy
request half their memory limit, so the rules leave big tasks there).
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from podtier.policies import DEFAULT_POLICY  # noqa: E402
from podtier.webhook.core.capacity import unknown_view  # noqa: E402
from podtier.webhook.core.decide import decide  # noqa: E402
from podtier.webhook.core.pod import view_pod  # noqa: E402
from podtier.webhook.core.profile import (  # noqa: E402
    StaticProfiles,
    TaskKey,
    TaskProfile,
    task_instance,
)
from podtier.webhook.core.tiering import (  # noqa: E402
    ESCALATED_MEMORY_ANNOTATION,
    RIGHT_SIZED_ANNOTATION,
)
from podtier.webhook.learning.fold import fold  # noqa: E402
from podtier.webhook.learning.outcome import Outcome  # noqa: E402
from podtier.webhook.policy import Policy  # noqa: E402
from podtier.webhook.policy.load import load_policy_text  # noqa: E402

MI = 2**20
GI = 2**30
DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TRIES = 3
CPU_MEAN = 0.7  # a run's mean cpu, of its p95
MEMORY_MEAN = 0.8  # a run's mean working set, of its peak
CPU_P95_OVER_RUNS = 1.09  # the p95 of uniform 0.9..1.1
PEAK_OVER_RUNS = 1.1
CLASSES = {  # name: cpu p95 range (millicores), memory peak range (MiB), minutes, owners' tier
    "light": ((60, 180), (150, 700), (10, 30), "light"),
    "medium": ((350, 800), (1000, 2800), (20, 60), "medium"),
    "heavy-cpu": ((1200, 1600), (1000, 3000), (30, 90), "heavy"),
    "heavy-mem": ((300, 800), (4600, 5800), (30, 90), "heavy"),
}
MIXES = {
    "default": {"light": 0.40, "medium": 0.25, "heavy-cpu": 0.20, "heavy-mem": 0.15},
    "memory-heavy": {"light": 0.20, "medium": 0.20, "heavy-cpu": 0.10, "heavy-mem": 0.50},
    "cpu-heavy": {"light": 0.20, "medium": 0.20, "heavy-cpu": 0.50, "heavy-mem": 0.10},
}
WAYS = ("rules", "learning", "by tier", "oracle")
BASELINES = ("by-limit", "by-request", "unlabelled")


@dataclass
class Task:
    index: int
    kind: str
    cpu: float  # nominal cpu p95, millicores
    memory: float  # nominal memory peak, bytes
    minutes: float
    offset: float  # seconds after midnight it starts

    @property
    def dag_task(self) -> tuple[str, str]:
        return f"replay_{self.index // 5}", f"task_{self.index}"


@dataclass
class Tally:
    pods: int = 0
    runs: int = 0
    oom_kills: int = 0
    failed_runs: int = 0
    idle_cpu_hours: float = 0.0
    idle_gib_hours: float = 0.0
    unrequested_cpu_hours: float = 0.0
    unrequested_gib_hours: float = 0.0
    requested_cpu_hours: float = 0.0
    requested_gib_hours: float = 0.0
    # runs after the task's first try was sized from its history, and OOM kills among them
    converged_runs: int = 0
    converged_oom_kills: int = 0
    converged: set[tuple[int, int]] = field(default_factory=set)  # (task, day)
    # (task, day) -> idle cpu·h, idle GiB·h of that task run (all its tries)
    idle_by_run: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)
    sized_at: dict[int, int] = field(default_factory=dict)  # task -> first run sized (1-based)


def make_tasks(count: int, rng: random.Random, mix: dict[str, float]) -> list[Task]:
    tasks = []
    bounds = []
    total = 0.0
    scale = sum(mix.values())
    for name in CLASSES:
        total += mix.get(name, 0.0) / scale
        bounds.append((total, name))
    for i in range(count):
        point = (i + 0.5) / count  # the classes in their shares, spread evenly
        kind = next(name for bound, name in bounds if point <= bound + 1e-9)
        cpu, memory, minutes, _ = CLASSES[kind]
        tasks.append(
            Task(
                i,
                kind,
                rng.uniform(*cpu),
                rng.uniform(*memory) * MI,
                rng.uniform(*minutes),
                rng.uniform(0, 6 * 3600),
            )
        )
    return tasks


def owners_tier(task: Task, baseline: str) -> str | None:
    """The tier a task's owners label its pods with, under `baseline` (None: no label)."""
    if baseline == "by-limit":
        return CLASSES[task.kind][3]
    if baseline == "by-request":
        cpu, memory = task.cpu * 1.1, task.memory * 1.1  # the most a run uses
        for name, (tier_cpu, tier_memory) in REQUESTS.items():
            if tier_cpu >= cpu and tier_memory >= memory:
                return name
        return "heavy"
    return None


REQUESTS = {"light": (250, 512 * MI), "medium": (1000, 2 * GI), "heavy": (2000, 4 * GI)}


def worker_pod(task: Task, day: int, try_number: int, baseline: str) -> dict[str, Any]:
    dag_id, task_id = task.dag_task
    run_id = f"scheduled__2026-01-{day + 1:02d}T00:00:00+00:00"
    identity = {"dag_id": dag_id, "task_id": task_id, "try_number": str(try_number)}
    labels = {"kubernetes_executor": "True", **identity}
    tier = owners_tier(task, baseline)
    if tier is not None:
        labels["tier"] = tier
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{task_id}-{day}-{try_number}",
            "namespace": "airflow",
            "labels": labels,
            "annotations": {**identity, "run_id": run_id},
        },
        "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]},
    }


def oracle_profile(task: Task) -> TaskProfile:
    dag_id, task_id = task.dag_task
    return TaskProfile(
        namespace="airflow",
        name=task_id,
        dag_id=dag_id,
        task_id=task_id,
        runs=1_000_000,
        cpu_p95_milli=int(task.cpu * CPU_P95_OVER_RUNS),
        memory_peak_bytes=int(task.memory * PEAK_OVER_RUNS),
    )


def replay(
    tasks: list[Task], days: int, policy: Policy, way: str, baseline: str, seed: int
) -> Tally:
    rng = random.Random(seed)  # the same usage draws for every way
    learns = way in ("learning", "by tier")
    profiles: dict[TaskKey, TaskProfile] = {}
    if way == "oracle":
        for task in tasks:
            instance = task_instance(
                "airflow", worker_pod(task, 0, 1, baseline)["metadata"]["labels"], {}
            )
            assert instance is not None
            profiles[instance.key] = oracle_profile(task)
    tally = Tally()
    capacity = unknown_view("replay: no cluster")
    runs = sorted(
        ((day, task) for day in range(days) for task in tasks), key=lambda r: (r[0], r[1].offset)
    )
    for day, task in runs:
        cpu_p95 = task.cpu * rng.uniform(0.9, 1.1)
        peak = task.memory * rng.uniform(0.9, 1.1)
        seconds = task.minutes * 60 * rng.uniform(0.9, 1.1)
        kill_at = rng.uniform(0.3, 0.9)
        start = T0 + day * DAY + task.offset
        tally.runs += 1
        converged = task.index in tally.sized_at
        for try_number in range(1, TRIES + 1):
            raw = worker_pod(task, day, try_number, baseline)
            pod = view_pod(raw)
            view = StaticProfiles(dict(profiles)) if way != "rules" else None
            decision = decide(pod, policy, capacity, view)
            assert decision.sizing is not None
            requests, limits = decision.sizing.requests, decision.sizing.limits
            if try_number == 1 and RIGHT_SIZED_ANNOTATION in decision.annotations:
                tally.sized_at.setdefault(task.index, day + 1)
                converged = True
            oom = peak > limits["memory"] / 1000
            ran = seconds * (kill_at if oom else 1.0)
            hours = ran / 3600
            cpu_used = CPU_MEAN * cpu_p95
            memory_used = MEMORY_MEAN * peak
            tally.pods += 1
            idle_cpu = max(0.0, requests["cpu"] - cpu_used) / 1000 * hours
            idle_gib = max(0.0, requests["memory"] / 1000 - memory_used) / GI * hours
            so_far = tally.idle_by_run.get((task.index, day), (0.0, 0.0))
            tally.idle_by_run[(task.index, day)] = (so_far[0] + idle_cpu, so_far[1] + idle_gib)
            tally.idle_cpu_hours += idle_cpu
            tally.unrequested_cpu_hours += max(0.0, cpu_used - requests["cpu"]) / 1000 * hours
            tally.idle_gib_hours += idle_gib
            tally.unrequested_gib_hours += (
                max(0.0, memory_used - requests["memory"] / 1000) / GI * hours
            )
            tally.requested_cpu_hours += requests["cpu"] / 1000 * hours
            tally.requested_gib_hours += requests["memory"] / 1000 / GI * hours
            if learns:
                instance = task_instance(
                    "airflow", raw["metadata"]["labels"], raw["metadata"]["annotations"]
                )
                assert instance is not None
                escalated = decision.annotations.get(ESCALATED_MEMORY_ANNOTATION)
                outcome = Outcome(
                    instance=instance,
                    pod=f"airflow/{raw['metadata']['name']}",
                    uid=str(uuid.UUID(int=rng.getrandbits(128))),
                    exit_code=137 if oom else 0,
                    reason="OOMKilled" if oom else "Completed",
                    oom_killed=oom,
                    started_at=start,
                    finished_at=start + ran,
                    requests=dict(requests),
                    limits=dict(limits),
                    tier=decision.tier.name,
                    pool=decision.pool.name,
                    escalated_bytes=int(escalated[:-2]) * MI if escalated else None,
                    labels=raw["metadata"]["labels"],
                    annotations=raw["metadata"]["annotations"],
                    # sampled usage: a killed pod's working set reached its limit
                    memory_peak_bytes=int(min(peak, limits["memory"] / 1000)),
                    cpu_p95_milli=int(cpu_p95),
                )
                profiles[instance.key] = fold(
                    profiles.get(instance.key), outcome, policy, start + ran
                )
            else:
                rng.getrandbits(128)  # the same draws as the learning ways
            start += ran + 60
            if oom:
                tally.oom_kills += 1
                if converged:
                    tally.converged_oom_kills += 1
            if not oom:
                break
        else:
            tally.failed_runs += 1
        if converged:
            tally.converged_runs += 1
            tally.converged.add((task.index, day))
    return tally


def policy_for(way: str) -> Policy:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    learning: dict[str, Any] = {"rightSizing": "apply"}
    if way == "by tier":
        learning["sizing"] = "tier"
    doc["spec"]["learning"] = learning
    return load_policy_text([("replay.yaml", yaml.safe_dump(doc, sort_keys=False))])


@dataclass(frozen=True)
class Verdict:
    line: str
    ok: bool


def judge(tallies: dict[str, Tally], tasks: int, min_runs: int) -> list[Verdict]:
    rules, learning, oracle = tallies["rules"], tallies["learning"], tallies["oracle"]
    out = []
    for i, (what, attr) in enumerate(
        (("idle cpu·h", "idle_cpu_hours"), ("idle GiB·h", "idle_gib_hours"))
    ):
        before, after, best = (getattr(t, attr) for t in (rules, learning, oracle))
        cut = 1 - after / before if before else 0.0
        out.append(Verdict(f"{what} {cut:.0%} below the rules (goal >= 30%)", cut >= 0.30))
        # The oracle needs no runs to learn: compare on the runs after each task was sized
        # from its history, and say what the whole replay gives too.
        learned = sum(learning.idle_by_run[run][i] for run in learning.converged)
        known = sum(oracle.idle_by_run[run][i] for run in learning.converged)
        ratio = learned / known if known else float("inf")
        whole = after / best if best else float("inf")
        out.append(
            Verdict(
                f"{what} {ratio:.2f}x the oracle's on the runs sized from history (goal <= 1.3x);"
                f" {whole:.2f}x over the whole replay, the first runs on the rules included",
                ratio <= 1.3,
            )
        )
    share = learning.converged_oom_kills / max(1, learning.converged_runs)
    out.append(
        Verdict(
            f"OOM kills after convergence {learning.converged_oom_kills} in "
            f"{learning.converged_runs} runs = {share:.2%} (goal <= 1%)",
            share <= 0.01,
        )
    )
    out.append(
        Verdict(f"failed task runs {learning.failed_runs} (goal 0)", learning.failed_runs == 0)
    )
    late = [i for i in range(tasks) if learning.sized_at.get(i, 10**9) > min_runs + 1]
    out.append(
        Verdict(
            f"tasks sized from their history within minRuns + 1 = {min_runs + 1} runs: "
            f"{tasks - len(late)}/{tasks}",
            not late,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mix", nargs="*", choices=sorted(MIXES), default=list(MIXES))
    parser.add_argument("--baseline", choices=(*BASELINES, "all"), default="by-limit")
    args = parser.parse_args(argv)
    baselines = BASELINES if args.baseline == "all" else (args.baseline,)
    policies = {way: policy_for(way) for way in WAYS}
    min_runs = policies["learning"].learning.min_runs
    settings = policies["learning"].learning
    print(
        f"{args.tasks} tasks x {args.days} daily runs = {args.tasks * args.days} task runs per "
        f"mix (up to {TRIES} tries each); default policy, rightSizing: apply, minRuns "
        f"{min_runs}, margins: cpu {settings.cpu_margin:g}, memory {settings.margin:g}, "
        f"memory limit {settings.limit_margin:g}"
    )
    failed = 0
    for baseline in baselines:
        for mix_name in args.mix:
            tasks = make_tasks(args.tasks, random.Random(args.seed), MIXES[mix_name])
            tallies = {
                way: replay(tasks, args.days, policies[way], way, baseline, args.seed + 1)
                for way in WAYS
            }
            print()
            print(f"mix {mix_name}, baseline {baseline} " + "-" * 40)
            print(f"  {'':34}" + "".join(f"{way:>12}" for way in WAYS))
            rows = [
                ("idle cpu·h", "idle_cpu_hours", ".1f"),
                ("idle GiB·h", "idle_gib_hours", ".1f"),
                ("requested cpu·h", "requested_cpu_hours", ".1f"),
                ("requested GiB·h", "requested_gib_hours", ".1f"),
                ("used-but-unrequested cpu·h", "unrequested_cpu_hours", ".1f"),
                ("used-but-unrequested GiB·h", "unrequested_gib_hours", ".1f"),
                ("pods launched (with retries)", "pods", "d"),
                ("OOM kills", "oom_kills", "d"),
                ("task runs failed (every try OOM)", "failed_runs", "d"),
            ]
            for label, attr, fmt in rows:
                cells = "".join(f"{getattr(tallies[w], attr):>12{fmt}}" for w in WAYS)
                print(f"  {label:<34}{cells}")
            for verdict in judge(tallies, args.tasks, min_runs):
                failed += not verdict.ok
                print(f"  {'PASS' if verdict.ok else 'MISS'}  {verdict.line}")
    print()
    print(f"{failed} figure(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
