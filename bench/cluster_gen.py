"""A synthetic cluster shaped like the issue's benchmark: 2,000 worker, 2,000 compute-optimized
and 1,000 gpu nodes with 30 Airflow pods each (5,000 nodes, 150,000 pods), as raw API objects.

    python bench/cluster_gen.py /tmp/cluster-5000.json [--nodes-per-pool 2000,2000,1000]

writes what `kubectl get nodes,pods -A -o json` would print for it (for timing
`podtier explain --cluster FILE`); `--layout indent2` or `compact` lays the same JSON out as
other tools do (json.dumps(indent=2): ~1 GB; one line, as the API server sends it: ~0.5 GB).
Objects are realistic in size: a pod is ~3 KB of JSON with labels, annotations, env, volumes,
tolerations and status, a node ~2.5 KB.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import orjson

POOLS = {  # pool: (node-type label, taint, allocatable)
    "worker": (
        "worker",
        {"key": "dedicated", "value": "worker", "effect": "NoSchedule"},
        {"cpu": "15890m", "memory": "62Gi", "pods": "110", "ephemeral-storage": "95Gi"},
    ),
    "compute": (
        "compute-optimized",
        {"key": "workload", "value": "heavy", "effect": "NoSchedule"},
        {"cpu": "31850m", "memory": "120Gi", "pods": "110", "ephemeral-storage": "95Gi"},
    ),
    "gpu": (
        "gpu",
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        {
            "cpu": "15890m",
            "memory": "120Gi",
            "pods": "110",
            "nvidia.com/gpu": "4",
            "ephemeral-storage": "95Gi",
        },
    ),
}
TOLERATIONS = {
    "worker": {"key": "dedicated", "operator": "Equal", "value": "worker", "effect": "NoSchedule"},
    "compute": {"key": "workload", "operator": "Equal", "value": "heavy", "effect": "NoSchedule"},
    "gpu": {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
}
TIERS = {  # tier: requests, limits
    "light": ({"cpu": "250m", "memory": "512Mi"}, {"cpu": "500m", "memory": "1Gi"}),
    "medium": ({"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "4Gi"}),
    "heavy": ({"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "8Gi"}),
    "gpu": (
        {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
        {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    ),
}
# Per pool, the tiers of its 30 pods, cycled (keeps each node partly free).
POOL_TIERS = {
    "worker": ["light"] * 3 + ["medium"],
    "compute": ["heavy", "light", "light"],
    "gpu": ["gpu"] * 1 + ["light"] * 9,
}


def node_object(name: str, pool: str, index: int) -> dict[str, Any]:
    node_type, taint, allocatable = POOLS[pool]
    ts = "2026-11-20T08:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"00000000-0000-4000-8000-{index:012d}",
            "resourceVersion": str(1000 + index),
            "creationTimestamp": ts,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node-type": node_type,
                "node.kubernetes.io/instance-type": "m6i.4xlarge",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": f"eu-west-1{'abc'[index % 3]}",
                "eks.amazonaws.com/nodegroup": f"{pool}-ng",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"providerID": f"aws:///eu-west-1a/i-{index:017x}", "taints": [taint]},
        "status": {
            "capacity": allocatable,
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": t,
                    "status": "False",
                    "reason": f"KubeletHasNo{t}",
                    "message": "ok",
                    "lastHeartbeatTime": ts,
                    "lastTransitionTime": ts,
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
            ]
            + [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": ts,
                    "lastTransitionTime": ts,
                }
            ],
            "addresses": [
                {
                    "type": "InternalIP",
                    "address": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}",
                },
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "kubeletVersion": "v1.30.4",
                "kernelVersion": "6.1.0",
                "osImage": "Amazon Linux 2023",
                "containerRuntimeVersion": "containerd://1.7.20",
                "architecture": "amd64",
                "operatingSystem": "linux",
                "machineID": f"{index:032x}",
                "systemUUID": f"{index:032x}",
                "bootID": f"{index:032x}",
                "kubeProxyVersion": "v1.30.4",
            },
        },
    }


def pod_object(
    node: str, pool: str, index: int, tier: str, phase: str = "Running"
) -> dict[str, Any]:
    requests, limits = TIERS[tier]
    dag, task = f"dag_{index % 97}", f"task_{index % 31}"
    run = f"scheduled__2026-11-26T0{index % 10}:00:00+00:00"
    name = f"{dag}-{task}-{index:07d}".replace("_", "-")
    ts = "2026-11-26T06:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "airflow",
            "uid": f"10000000-0000-4000-8000-{index:012d}",
            "resourceVersion": str(100000 + index),
            "creationTimestamp": ts,
            "labels": {
                "airflow-worker": "123",
                "airflow_version": "2.10.3",
                "dag_id": dag,
                "kubernetes_executor": "True",
                "run_id": "scheduled__2026-11-26T0000000000-8b1f3c2a",
                "task_id": task,
                "try_number": "1",
                "component": "worker",
                "release": "airflow",
            },
            "annotations": {
                "dag_id": dag,
                "task_id": task,
                "run_id": run,
                "try_number": "1",
                "podtier.io/tier": tier,
                "podtier.io/pool": pool,
                "podtier.io/reason": f"tier {tier} from label; pool {pool} fits",
                "podtier.io/policy": "default@3f9a1c2b",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "base",
                    "image": "apache/airflow:2.10.3-python3.11",
                    "args": [
                        "airflow",
                        "tasks",
                        "run",
                        dag,
                        task,
                        run,
                        "--local",
                        "--subdir",
                        "DAGS_FOLDER/etl.py",
                    ],
                    "env": [
                        {"name": "AIRFLOW__CORE__EXECUTOR", "value": "LocalExecutor"},
                        {
                            "name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                            "valueFrom": {
                                "secretKeyRef": {"name": "airflow-metadata", "key": "connection"}
                            },
                        },
                        {"name": "AIRFLOW_IS_K8S_EXECUTOR_POD", "value": "True"},
                        {
                            "name": "AIRFLOW__CORE__FERNET_KEY",
                            "valueFrom": {
                                "secretKeyRef": {"name": "airflow-fernet-key", "key": "fernet-key"}
                            },
                        },
                    ],
                    "resources": {"requests": requests, "limits": limits},
                    "volumeMounts": [
                        {"name": "logs", "mountPath": "/opt/airflow/logs"},
                        {
                            "name": "config",
                            "mountPath": "/opt/airflow/airflow.cfg",
                            "subPath": "airflow.cfg",
                            "readOnly": True,
                        },
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        },
                    ],
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": [
                {"name": "logs", "emptyDir": {}},
                {"name": "config", "configMap": {"name": "airflow-config"}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
                        ]
                    },
                },
            ],
            "nodeName": node,
            "nodeSelector": {"node-type": POOLS[pool][0]},
            "tolerations": [
                TOLERATIONS[pool],
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "restartPolicy": "Never",
            "serviceAccountName": "airflow-worker",
            "schedulerName": "default-scheduler",
            "securityContext": {"runAsUser": 50000, "fsGroup": 0},
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
            "terminationGracePeriodSeconds": 600,
            "dnsPolicy": "ClusterFirst",
        },
        "status": {
            "phase": phase,
            "hostIP": "10.0.0.1",
            "podIP": f"10.1.{index // 256 % 256}.{index % 256}",
            "qosClass": "Burstable",
            "startTime": ts,
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": ts}
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "containerStatuses": [
                {
                    "name": "base",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "image": "docker.io/apache/airflow:2.10.3-python3.11",
                    "imageID": "docker.io/apache/airflow@sha256:" + "ab" * 32,
                    "containerID": f"containerd://{index:064x}",
                    "state": {"running": {"startedAt": ts}},
                }
            ],
        },
    }


def cluster(
    per_pool: tuple[int, int, int] = (2000, 2000, 1000),
    pods_per_node: int = 30,
) -> Iterator[dict[str, Any]]:
    """Nodes first, then pods, as `kubectl get nodes,pods` prints them."""
    layout = list(zip(("worker", "compute", "gpu"), per_pool, strict=True))
    index = 0
    for pool, count in layout:
        for i in range(count):
            yield node_object(f"{pool}-{i:05d}", pool, index)
            index += 1
    index = 0
    for pool, count in layout:
        tiers = POOL_TIERS[pool]
        for i in range(count):
            for j in range(pods_per_node):
                yield pod_object(f"{pool}-{i:05d}", pool, index, tiers[j % len(tiers)])
                index += 1


def kubectl_item(obj: dict[str, Any]) -> bytes:
    """One List item laid out as kubectl prints it: keys sorted, 4-space indent, at depth 2."""
    text = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    for depth in range(20, 0, -1):  # 2-space indent -> 4-space (strings hold no raw \n or \t)
        text = text.replace(b"\n" + b"  " * depth, b"\n" + b"\t" * depth)
    return b"        " + text.replace(b"\t", b"    ").replace(b"\n", b"\n        ")


def indent2_item(obj: dict[str, Any]) -> bytes:
    """One List item as a 2-space pretty-printer lays it out (json.dumps(indent=2), orjson)."""
    text = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    return b"    " + text.replace(b"\n", b"\n    ")


def compact_item(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


# layout: (item, the List's opening, between items, its closing)
LAYOUTS = {
    "kubectl": (  # what kubectl prints: 4 spaces
        kubectl_item,
        b'{\n    "apiVersion": "v1",\n    "items": [\n',
        b",\n",
        b'\n    ],\n    "kind": "List",\n'
        b'    "metadata": {\n        "resourceVersion": ""\n    }\n}\n',
    ),
    "indent2": (  # json.dumps(indent=2), as other tools write it
        indent2_item,
        b'{\n  "apiVersion": "v1",\n  "items": [\n',
        b",\n",
        b'\n  ],\n  "kind": "List",\n  "metadata": {\n    "resourceVersion": ""\n  }\n}\n',
    ),
    "compact": (  # one line, as the API server sends it (kubectl get --raw)
        compact_item,
        b'{"apiVersion":"v1","items":[',
        b",",
        b'],"kind":"List","metadata":{"resourceVersion":""}}',
    ),
}


def write_dump(
    path: str,
    per_pool: tuple[int, int, int] = (2000, 2000, 1000),
    objects: Iterator[dict[str, Any]] | None = None,
    layout: str = "kubectl",
) -> int:
    """Write what `kubectl get nodes,pods -A -o json` prints for `cluster(per_pool)` (or for
    `objects`), in `layout` (LAYOUTS); returns its size in bytes."""
    item, opening, between, closing = LAYOUTS[layout]
    with open(path, "wb") as out:
        out.write(opening)
        for i, obj in enumerate(cluster(per_pool) if objects is None else objects):
            out.write((between if i else b"") + item(obj))
        out.write(closing)
        return out.tell()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--nodes-per-pool", default="2000,2000,1000")
    parser.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default="kubectl",
        help="kubectl (4-space indent, sorted keys), indent2, or compact (one line)",
    )
    args = parser.parse_args(argv)
    per_pool = tuple(int(n) for n in args.nodes_per_pool.split(","))
    size = write_dump(args.out, per_pool, layout=args.layout)  # type: ignore[arg-type]
    print(
        f"wrote {args.out}: {sum(per_pool)} nodes, {sum(per_pool) * 30} pods, {size / 1e6:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
