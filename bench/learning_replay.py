"""Replay of synthetic Airflow task runs with known usage, through podtier's own decision and
learning code: how many runs until each task runs in the right tier, and the requested but
unused cpu·hours before (tiers from the rules alone) and after (learning).

    /work/venv/bin/python bench/learning_replay.py [--tasks 50] [--days 20] [--seed 7]
        [--mix light=0.4,medium=0.25,heavy-cpu=0.2,heavy-mem=0.15]

Each of `--tasks` tasks runs once a day for `--days` days (50 x 20 = 1,000 task runs). A task
has a nominal cpu p95 and memory peak; each run uses them times a uniform 0.9..1.1 (its mean
cpu is 0.7 x its p95). The classes and their ranges sit clear of the default policy's tier
boundaries (after the 10% noise, the 5% histogram buckets and the 15% margin), so each task has
one right tier, the smallest whose cpu request covers its cpu p95 and whose memory limit
covers its memory peak x 1.15:

    light      cpu  60-180m   memory  150-700Mi     (default share 40%)
    medium     cpu 350-800m   memory 1000-2800Mi    (25%)
    heavy-cpu  cpu 1.2-1.6    memory 1000-3000Mi    (20%)
    heavy-mem  cpu 300-800m   memory 4600-5800Mi    (15%; OOMKilled at medium's 4Gi limit)

Every pod asks for nothing (the policy default, medium). A pod whose peak exceeds its memory
limit is OOMKilled part way and retried (Airflow's retries: up to 3 tries). Each pod is decided
by `core.decide` with the profiles as the writer would have them (`learning.fold` of every
finished pod, its usage sampled exactly), under the default policy with `rightSizing: apply`.
No cluster: headroom unknown, first pool.
"""

from __future__ import annotations

import argparse
import random
import statistics
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
from podtier.webhook.core.tiering import ESCALATED_MEMORY_ANNOTATION  # noqa: E402
from podtier.webhook.learning.fold import fold  # noqa: E402
from podtier.webhook.learning.outcome import Outcome  # noqa: E402
from podtier.webhook.policy import Policy  # noqa: E402
from podtier.webhook.policy.load import load_policy_text  # noqa: E402

MI = 2**20
DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TRIES = 3
CLASSES = [  # name, share, cpu p95 range (millicores), memory peak range (MiB), minutes
    ("light", 0.40, (60, 180), (150, 700), (10, 30)),
    ("medium", 0.25, (350, 800), (1000, 2800), (20, 60)),
    ("heavy-cpu", 0.20, (1200, 1600), (1000, 3000), (30, 90)),
    ("heavy-mem", 0.15, (300, 800), (4600, 5800), (30, 90)),
]
RIGHT_TIER = {"light": "light", "medium": "medium", "heavy-cpu": "heavy", "heavy-mem": "heavy"}


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
    oom_kills: int = 0
    failed_runs: int = 0
    unused_cpu_hours: float = 0.0
    requested_cpu_hours: float = 0.0
    steady_unused_cpu_hours: float = 0.0  # the last half of the days
    # used above the request: cpu the scheduler did not count (the pod asked for too little)
    unrequested_cpu_hours: float = 0.0
    by_class: dict[str, list[float]] = field(default_factory=dict)  # class -> [unused, above]
    first_try_tiers: dict[int, list[str]] = field(default_factory=dict)  # task -> tier per day


def make_tasks(count: int, rng: random.Random, mix: dict[str, float]) -> list[Task]:
    tasks = []
    bounds = []
    total = 0.0
    scale = sum(mix.values())
    for name, *_ in CLASSES:
        total += mix.get(name, 0.0) / scale
        bounds.append((total, name))
    for i in range(count):
        # the classes in their shares, spread evenly over the tasks
        point = (i + 0.5) / count
        kind = next(name for bound, name in bounds if point <= bound + 1e-9)
        _, _, cpu, memory, minutes = next(c for c in CLASSES if c[0] == kind)
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


def worker_pod(task: Task, day: int, try_number: int) -> dict[str, Any]:
    dag_id, task_id = task.dag_task
    run_id = f"scheduled__2026-01-{day + 1:02d}T00:00:00+00:00"
    identity = {"dag_id": dag_id, "task_id": task_id, "try_number": str(try_number)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{task_id}-{day}-{try_number}",
            "namespace": "airflow",
            "labels": {"kubernetes_executor": "True", **identity},
            "annotations": {**identity, "run_id": run_id},
        },
        "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]},
    }


def replay(
    tasks: list[Task], days: int, policy: Policy, learning: bool, seed: int
) -> tuple[Tally, dict[TaskKey, TaskProfile]]:
    rng = random.Random(seed)  # the same usage draws for both runs of the replay
    profiles: dict[TaskKey, TaskProfile] = {}
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
        for try_number in range(1, TRIES + 1):
            raw = worker_pod(task, day, try_number)
            pod = view_pod(raw)
            view = StaticProfiles(dict(profiles)) if learning else None
            decision = decide(pod, policy, capacity, view)
            assert decision.sizing is not None
            requests, limits = decision.sizing.requests, decision.sizing.limits
            if try_number == 1:
                tally.first_try_tiers.setdefault(task.index, []).append(decision.tier.name)
            oom = peak > limits["memory"] / 1000
            ran = seconds * (kill_at if oom else 1.0)
            hours = ran / 3600
            unused = max(0.0, requests["cpu"] / 1000 - 0.7 * cpu_p95 / 1000) * hours
            above = max(0.0, 0.7 * cpu_p95 / 1000 - requests["cpu"] / 1000) * hours
            tally.pods += 1
            tally.unused_cpu_hours += unused
            tally.unrequested_cpu_hours += above
            per_class = tally.by_class.setdefault(task.kind, [0.0, 0.0])
            per_class[0] += unused
            per_class[1] += above
            tally.requested_cpu_hours += requests["cpu"] / 1000 * hours
            if day >= days // 2:
                tally.steady_unused_cpu_hours += unused
            if learning:
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
            start += ran + 60
            if not oom:
                break
            tally.oom_kills += 1
        else:
            tally.failed_runs += 1
    return tally, profiles


def converged_after(tiers: list[str], right: str) -> int | None:
    """The number of runs before the first-try tier is right and stays right; None if never."""
    for i in range(len(tiers)):
        if all(t == right for t in tiers[i:]):
            return i + 1
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--mix",
        default=",".join(f"{name}={share}" for name, share, *_ in CLASSES),
        help="the classes' shares of the tasks",
    )
    args = parser.parse_args(argv)
    mix = {k: float(v) for k, v in (part.split("=") for part in args.mix.split(","))}

    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["learning"] = {"rightSizing": "apply"}
    policy = load_policy_text([("replay.yaml", yaml.safe_dump(doc, sort_keys=False))])
    tasks = make_tasks(args.tasks, random.Random(args.seed), mix)
    before, _ = replay(tasks, args.days, policy, learning=False, seed=args.seed + 1)
    after, profiles = replay(tasks, args.days, policy, learning=True, seed=args.seed + 1)

    print(
        f"{args.tasks} tasks x {args.days} daily runs = {args.tasks * args.days} task runs "
        f"(up to {TRIES} tries each); default policy, learning rightSizing: apply, minRuns 5; "
        f"mix {args.mix}"
    )
    print()
    print("runs until a task's first try runs in its right tier (and stays there):")
    needed_all: list[int] = []
    for name, *_ in CLASSES:
        members = [t for t in tasks if t.kind == name]
        if not members:
            continue
        needed = [
            converged_after(after.first_try_tiers[t.index], RIGHT_TIER[name]) for t in members
        ]
        done = [n for n in needed if n is not None]
        needed_all += done
        print(
            f"  {name:<10} {len(members):>3} tasks, right tier {RIGHT_TIER[name]:<7} "
            f"converged {len(done)}/{len(members)}; runs needed: "
            + (f"median {statistics.median(done):g}, max {max(done)}" if done else "-")
        )
    print(
        f"  all        {len(needed_all)}/{len(tasks)} converged; runs needed median "
        f"{statistics.median(needed_all):g}, p90 "
        f"{sorted(needed_all)[int(0.9 * (len(needed_all) - 1))]}, max {max(needed_all)}"
    )
    print()
    print(f"{'':34}{'before (rules)':>16}{'after (learning)':>18}")
    rows = [
        ("pods launched (with retries)", before.pods, after.pods, "d"),
        ("OOM kills", before.oom_kills, after.oom_kills, "d"),
        ("task runs failed (every try OOM)", before.failed_runs, after.failed_runs, "d"),
        ("requested cpu·hours", before.requested_cpu_hours, after.requested_cpu_hours, ".1f"),
        (
            "requested-but-unused cpu·hours",
            before.unused_cpu_hours,
            after.unused_cpu_hours,
            ".1f",
        ),
        (
            f"  of which days {args.days // 2 + 1}-{args.days}",
            before.steady_unused_cpu_hours,
            after.steady_unused_cpu_hours,
            ".1f",
        ),
        *(
            (f"  of which {name} tasks", before.by_class[name][0], after.by_class[name][0], ".1f")
            for name, *_ in CLASSES
            if name in before.by_class
        ),
        (
            "used-but-unrequested cpu·hours",
            before.unrequested_cpu_hours,
            after.unrequested_cpu_hours,
            ".1f",
        ),
    ]
    for label, b, a, fmt in rows:
        print(f"  {label:<32}{b:>16{fmt}}{a:>18{fmt}}")
    change = after.unused_cpu_hours / before.unused_cpu_hours - 1
    print()
    print(
        f"requested-but-unused cpu·hours {before.unused_cpu_hours:.1f} -> "
        f"{after.unused_cpu_hours:.1f} ({change:+.0%}); profiles written: {len(profiles)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
