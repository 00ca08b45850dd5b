"""A synthetic cluster as `kubectl get nodes,pods -A -o json` prints it, for `--cluster FILE`.

    /work/venv/bin/python bench/cluster_snapshot.py --nodes 200 --out cluster.json

Pools follow the default policy: 75% `worker` nodes (16 cpu, 64Gi), 20% `compute-optimized`
(32 cpu, 128Gi), 5% `gpu` (8 cpu, 64Gi, 4 GPUs), each with its pool's taint. Every node runs
Airflow task pods that use 40-95% of it (seeded, so the file is the same on every run), so
placement has to look for a node with room.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import orjson

GiB = 2**30
# pool -> (share of nodes, allocatable, taint)
POOLS: dict[str, tuple[float, dict[str, str], dict[str, str]]] = {
    "worker": (
        0.75,
        {"cpu": "15890m", "memory": "62Gi", "pods": "110"},
        {"key": "dedicated", "value": "worker", "effect": "NoSchedule"},
    ),
    "compute-optimized": (
        0.20,
        {"cpu": "31850m", "memory": "124Gi", "pods": "110"},
        {"key": "workload", "value": "heavy", "effect": "NoSchedule"},
    ),
    "gpu": (
        0.05,
        {"cpu": "7910m", "memory": "60Gi", "pods": "110", "nvidia.com/gpu": "4"},
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
    ),
}
# task pod shapes: (cpu millicores, memory MiB)
SHAPES = [(250, 512), (500, 1024), (1000, 2048), (2000, 4096)]


def make_cluster(nodes: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    pods: list[dict[str, Any]] = []
    counts = {pool: round(nodes * share) for pool, (share, _, _) in POOLS.items()}
    counts["worker"] += nodes - sum(counts.values())
    for pool, count in counts.items():
        _, allocatable, taint = POOLS[pool]
        for i in range(count):
            name = f"{pool}-{i:03d}"
            items.append(_node(name, pool, allocatable, taint))
            budget = _milli_cpu(allocatable["cpu"]) * rng.uniform(0.40, 0.95)
            used = 0
            while True:
                cpu, mem = rng.choice(SHAPES)
                if used + cpu > budget:
                    break
                used += cpu
                pods.append(_pod(f"task-{len(pods):05d}", name, taint, cpu, mem))
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": items + pods,
    }


def _milli_cpu(text: str) -> int:
    return int(text[:-1]) if text.endswith("m") else int(text) * 1000


def _node(
    name: str, pool: str, allocatable: dict[str, str], taint: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node-type": pool,
            },
        },
        "spec": {"taints": [taint]},
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def _pod(name: str, node: str, taint: dict[str, str], cpu: int, mem: int) -> dict[str, Any]:
    resources = {"requests": {"cpu": f"{cpu}m", "memory": f"{mem}Mi"}}
    resources["limits"] = {"cpu": f"{cpu * 2}m", "memory": f"{mem * 2}Mi"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "airflow",
            "labels": {"kubernetes_executor": "True"},
        },
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "base", "image": "apache/airflow:3.3.2", "resources": resources}
            ],
            "tolerations": [{**taint, "operator": "Equal"}],
        },
        "status": {"phase": "Running"},
    }


def write_cluster(path: Path, nodes: int) -> Path:
    path.write_bytes(orjson.dumps(make_cluster(nodes)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="write a synthetic kubectl nodes,pods dump")
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cluster = make_cluster(args.nodes)
    args.out.write_bytes(orjson.dumps(cluster))
    kinds = [item["kind"] for item in cluster["items"]]
    print(f"{args.out}: {kinds.count('Node')} nodes, {kinds.count('Pod')} pods")


if __name__ == "__main__":
    main()
