"""Raw Node and Pod objects as the API server sends them, and the default policy's pools."""

from __future__ import annotations

from typing import Any

# The default policy's pools: node selector and the toleration podtier adds.
POOLS: dict[str, tuple[dict[str, str], list[dict[str, Any]]]] = {
    "worker": (
        {"node-type": "worker"},
        [{"key": "dedicated", "operator": "Equal", "value": "worker", "effect": "NoSchedule"}],
    ),
    "compute": (
        {"node-type": "compute-optimized"},
        [{"key": "workload", "operator": "Equal", "value": "heavy", "effect": "NoSchedule"}],
    ),
    "gpu": (
        {"node-type": "gpu"},
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    ),
}
POOL_TAINTS = {
    "worker": [{"key": "dedicated", "value": "worker", "effect": "NoSchedule"}],
    "compute": [{"key": "workload", "value": "heavy", "effect": "NoSchedule"}],
    "gpu": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
}
NODE_TYPE = {"worker": "worker", "compute": "compute-optimized", "gpu": "gpu"}

GI = 2**30 * 1000  # one Gi in milli-units


def node(
    name: str,
    pool: str = "worker",
    cpu: str = "4",
    memory: str = "16Gi",
    pods: str = "110",
    gpus: str | None = None,
    ready: bool = True,
    unschedulable: bool = False,
    taints: list[dict[str, str]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus
    spec: dict[str, Any] = {"taints": POOL_TAINTS[pool] if taints is None else taints}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "node-type": NODE_TYPE[pool],
                **(labels or {}),
            },
        },
        "spec": spec,
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True" if ready else "False"},
            ],
        },
    }


def pod(
    name: str,
    node_name: str = "",
    cpu: str = "1",
    memory: str = "1Gi",
    phase: str = "Running",
    namespace: str = "airflow",
    gpus: str | None = None,
    pool: str | None = None,
    init: list[dict[str, Any]] | None = None,
    overhead: dict[str, str] | None = None,
    counted_on: str | None = None,
) -> dict[str, Any]:
    """`counted_on`: the `podtier.io/node` annotation (the node podtier counted room on)."""
    requests = {"cpu": cpu, "memory": memory}
    if gpus is not None:
        requests["nvidia.com/gpu"] = gpus
    spec: dict[str, Any] = {
        "containers": [
            {"name": "base", "image": "apache/airflow", "resources": {"requests": requests}}
        ]
    }
    if node_name:
        spec["nodeName"] = node_name
    if init:
        spec["initContainers"] = init
    if overhead:
        spec["overhead"] = overhead
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"kubernetes_executor": "True"},
    }
    if pool is not None:
        metadata["annotations"] = {"podtier.io/pool": pool}
        selector, tolerations = POOLS[pool]
        spec["nodeSelector"] = dict(selector)
        spec["tolerations"] = [dict(t) for t in tolerations]
    if counted_on is not None:
        metadata.setdefault("annotations", {})["podtier.io/node"] = counted_on
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase},
    }


def init_container(name: str, cpu: str, memory: str = "0", sidecar: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": memory}},
    }
    if sidecar:
        container["restartPolicy"] = "Always"
    return container


def requests(cpu: str = "1", memory: str = "1Gi", gpus: int = 0) -> dict[str, int]:
    """A pod's effective requests in milli-units, as the core passes them to find_node."""
    from podtier.webhook.core.quantity import to_milli

    out = {"cpu": to_milli(cpu), "memory": to_milli(memory), "pods": 1000}
    if gpus:
        out["nvidia.com/gpu"] = gpus * 1000
    return out


def as_list(*objects: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl get nodes,pods -A -o json` prints."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": list(objects),
    }
