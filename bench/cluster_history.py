"""The synthetic cluster of `cluster_gen` with a day of history, for `podtier report`.

    python bench/cluster_history.py /tmp/history-5000.json [--nodes-per-pool 2000,2000,1000]

The same nodes and pods as `cluster_gen.cluster()`, with what a report reads set on each pod,
deterministically (seeded):

- of each node's 30 pods, 19 are Running, 8 Succeeded, 1 Failed (its `base` container
  OOMKilled), 1 Pending and bound (pulling its image), and 1 Pending and not bound to any
  node yet (placed in the node's pool);
- creation, binding (`PodScheduled`), `status.startTime` and container finish times over the
  day before `NOW`: most pods wait seconds for a node, those created in two busy hours wait
  minutes; runs last 5 to 60 minutes;
- task ids that say the tier (`medium_7`), so each task keeps one tier, as tasks do;
- one PodMetrics per Running pod (cpu and memory at a per-task share of the requests, as
  `kubectl get podmetrics -A -o json` prints them);
- one TaskProfile per task (`podtier.io/v1alpha1`, the learning work's contract), with runs,
  OOM kills, run seconds, peaks, the last 10 runs and a recommended tier.

Items come as `kubectl get nodes,pods,taskprofiles,podmetrics -A -o json` prints them.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_gen import POOL_TIERS, POOLS, TIERS, node_object, pod_object, write_dump  # noqa: E402

from podtier.webhook.core.profile import task_key  # noqa: E402
from podtier.webhook.learning.names import profile_name  # noqa: E402

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()
BUSY_HOURS = (3, 9)  # hours before NOW when the pools were short of nodes
NEXT_TIER = {"light": "medium", "medium": "heavy", "heavy": "heavy", "gpu": "gpu"}
SMALLER_TIER = {"light": "light", "medium": "light", "heavy": "medium", "gpu": "gpu"}
GI = 1024**3


def stamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_shares(dag: str, task: str) -> tuple[float, float, bool]:
    """(cpu share, memory share of the requests, OOM-prone) of one task, fixed by its name."""
    digest = hashlib.sha256(f"{dag}/{task}".encode()).digest()
    cpu = 0.04 + digest[0] / 255 * 1.0
    memory = 0.08 + digest[1] / 255 * 0.85
    return cpu, memory, digest[2] < 18  # about 7% of tasks run out of memory now and then


def _wait(rng: random.Random, created: float) -> float:
    hours_ago = (NOW - created) / 3600
    if any(busy <= hours_ago < busy + 1 for busy in BUSY_HOURS):
        return rng.uniform(60, 900)
    return rng.expovariate(1 / 6)


def _identity(pod: dict[str, Any], index: int, tier: str) -> tuple[str, str]:
    dag, task = f"dag_{index % 41}", f"{tier}_{index % 13}"
    meta = pod["metadata"]
    for where in (meta["labels"], meta["annotations"]):
        where["dag_id"], where["task_id"] = dag, task
    meta["name"] = f"{dag}-{task}-{index:07d}".replace("_", "-")
    return dag, task


def _terminated(reason: str, exit_code: int, started: float, finished: float) -> dict[str, Any]:
    return {
        "terminated": {
            "containerID": "containerd://" + "cd" * 32,
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": stamp(started),
            "finishedAt": stamp(finished),
        }
    }


def with_history(
    pod: dict[str, Any], rng: random.Random, kind: str, index: int, tier: str
) -> dict[str, Any]:
    """Set phase, times and container state on a `cluster_gen` pod. `kind` is one of Running,
    Succeeded, Failed (OOMKilled), Pulling (Pending, bound), Waiting (Pending, unbound)."""
    _identity(pod, index, tier)
    status = pod["status"]
    base = status["containerStatuses"][0]
    run = rng.uniform(300, 3600)
    if kind == "Running":
        started = NOW - rng.uniform(0.05, 1) * run
    elif kind in ("Succeeded", "Failed"):
        started = NOW - rng.uniform(0, 86400) - run
    else:
        started = NOW - rng.uniform(5, 60)
    scheduled = started - 2
    created = scheduled - _wait(rng, scheduled)
    if kind == "Waiting":
        created = NOW - _wait(rng, NOW - rng.uniform(0, 3 * 3600))
        del pod["spec"]["nodeName"]
        for key in ("hostIP", "podIP", "startTime"):
            status.pop(key)
        status["phase"] = "Pending"
        status["qosClass"] = "Burstable"
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/5000 nodes are available: 5000 Insufficient cpu.",
                "lastTransitionTime": stamp(created),
            }
        ]
        del status["containerStatuses"]
    else:
        status["startTime"] = stamp(started)
        for condition in status["conditions"]:
            condition["lastTransitionTime"] = stamp(
                scheduled if condition["type"] == "PodScheduled" else started
            )
        if kind == "Pulling":
            status["phase"] = "Pending"
            base.update(ready=False, started=False)
            base["state"] = {"waiting": {"reason": "ContainerCreating"}}
        elif kind == "Running":
            base["state"] = {"running": {"startedAt": stamp(started)}}
        else:
            status["phase"] = kind
            base.update(ready=False, started=False)
            oom = kind == "Failed"
            base["state"] = _terminated(
                "OOMKilled" if oom else "Completed", 137 if oom else 0, started, started + run
            )
    pod["metadata"]["creationTimestamp"] = stamp(created)
    return pod


def pod_metrics(pod: dict[str, Any]) -> dict[str, Any]:
    """The PodMetrics metrics-server serves for a Running pod."""
    meta = pod["metadata"]
    cpu_share, memory_share, _ = task_shares(meta["labels"]["dag_id"], meta["labels"]["task_id"])
    requests = pod["spec"]["containers"][0]["resources"]["requests"]
    cpu = _milli(requests["cpu"]) * cpu_share
    memory = _bytes(requests["memory"]) * memory_share
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "creationTimestamp": stamp(NOW),
            "labels": dict(meta["labels"]),
        },
        "timestamp": stamp(NOW - 20),
        "window": "20.035s",
        "containers": [
            {
                "name": "base",
                "usage": {"cpu": f"{int(cpu * 1e6)}n", "memory": f"{int(memory) // 1024}Ki"},
            }
        ],
    }


def task_profile(
    rng: random.Random, namespace: str, dag: str, task: str, tier: str, pool: str
) -> dict[str, Any]:
    """A TaskProfile as the learning work writes it (see the TaskProfile contract)."""
    cpu_share, memory_share, oom_prone = task_shares(dag, task)
    requests, limits = TIERS[tier]
    runs = rng.randint(20, 400)
    kills = rng.randint(1, max(1, runs // 10)) if oom_prone else 0
    mean_run = rng.uniform(300, 3600)
    memory_request = _bytes(requests["memory"])
    peak = int(_bytes(limits["memory"]) * 1.02) if kills else int(memory_request * memory_share)
    cpu_p95 = int(_milli(requests["cpu"]) * min(1.6, cpu_share * 1.3))
    recommended = NEXT_TIER[tier] if kills else SMALLER_TIER[tier] if memory_share < 0.3 else tier
    last_runs = []
    for k in range(min(10, runs)):
        finished = NOW - (10 - k) * rng.uniform(600, 7200)
        oom = kills > 0 and k >= 10 - kills
        last_runs.append(
            {
                "runId": f"scheduled__2026-11-26T{k:02d}:00:00+00:00",
                "tryNumber": 1,
                "mapIndex": -1,
                "exitCode": 137 if oom else 0,
                "reason": "OOMKilled" if oom else "Completed",
                "oomKilled": oom,
                "runSeconds": round(mean_run * rng.uniform(0.7, 1.3), 1),
                "finishedAt": stamp(finished),
                "memoryLimitBytes": _bytes(limits["memory"]),
                "memoryPeakBytes": peak if oom else int(memory_request * memory_share),
                "cpuP95Milli": cpu_p95,
            }
        )
    return {
        "apiVersion": "podtier.io/v1alpha1",
        "kind": "TaskProfile",
        "metadata": {
            "name": profile_name(task_key(namespace, dag, task)),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "podtier"},
            "creationTimestamp": stamp(NOW - 30 * 86400),
        },
        "spec": {"dagId": dag, "taskId": task},
        "status": {
            "runs": runs,
            "oomKills": kills,
            "runSeconds": round(runs * mean_run, 1),
            "memoryPeakBytes": peak,
            "cpuP95Milli": cpu_p95,
            "requests": dict(requests),
            "limits": dict(limits),
            "tier": tier,
            "pool": pool,
            "recommendedTier": recommended,
            "lastRuns": last_runs,
            "updatedAt": stamp(NOW - rng.uniform(0, 600)),
        },
    }


def history_cluster(
    per_pool: tuple[int, int, int] = (2000, 2000, 1000), seed: int = 13
) -> Iterator[dict[str, Any]]:
    """Nodes, pods, TaskProfiles, then PodMetrics (the order `kubectl get
    nodes,pods,taskprofiles,podmetrics` prints)."""
    rng = random.Random(seed)
    layout = list(zip(POOLS, per_pool, strict=True))
    index = 0
    for pool, count in layout:
        for i in range(count):
            yield node_object(f"{pool}-{i:05d}", pool, index)
            index += 1
    kinds = ["Running"] * 19 + ["Succeeded"] * 8 + ["Failed", "Pulling", "Waiting"]
    tasks: dict[tuple[str, str], tuple[str, str]] = {}
    running: list[dict[str, Any]] = []
    index = 0
    for pool, count in layout:
        tiers = POOL_TIERS[pool]
        for i in range(count):
            for j, kind in enumerate(kinds):
                tier = tiers[j % len(tiers)]
                pod = with_history(
                    pod_object(f"{pool}-{i:05d}", pool, index, tier), rng, kind, index, tier
                )
                labels = pod["metadata"]["labels"]
                tasks.setdefault((labels["dag_id"], labels["task_id"]), (tier, pool))
                if kind == "Running":
                    running.append(pod)
                yield pod
                index += 1
    for (dag, task), (tier, pool) in sorted(tasks.items()):
        yield task_profile(rng, "airflow", dag, task, tier, pool)
    for pod in running:
        yield pod_metrics(pod)


def _milli(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def _bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": GI}
    return int(float(quantity[:-2]) * units[quantity[-2:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--nodes-per-pool", default="2000,2000,1000")
    args = parser.parse_args(argv)
    per_pool = tuple(int(n) for n in args.nodes_per_pool.split(","))
    size = write_dump(args.out, objects=history_cluster(per_pool))  # type: ignore[arg-type]
    print(
        f"wrote {args.out}: {sum(per_pool)} nodes, {sum(per_pool) * 30} pods with history, "
        f"{size / 1e6:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
