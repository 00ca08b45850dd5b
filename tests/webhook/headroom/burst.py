"""A burst cluster on the real control plane, for the burst tests and `bench/scheduler_burst.py`.

`BurstCluster(plane, tmp_dir).start(workers=4, worker_cpu="16", replicas=1)` makes the nodes
(`workers` worker nodes with taint dedicated=worker:NoSchedule, 2 compute-optimized nodes of
5 cpu and 20Gi with taint workload=heavy:NoSchedule: room for 2 heavy pods each), then runs
podtier (`serve --cluster auto`; several replicas with `--peers`, behind a connection spreader
as a Service) as the control plane's webhooks, each with `serve_args` added (e.g. `--learning`).
`close()` stops podtier and resets the plane.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes

from tests.conftest import Server, load_review, run_podtier
from tests.controlplane import ControlPlane, PodOutcome
from tests.spreader import Spreader

NS = "airflow"
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}
COMPUTE_TAINT = {"key": "workload", "value": "heavy", "effect": "NoSchedule"}
COMPUTE_TOLERATION = {"key": "workload", "operator": "Equal", "value": "heavy"}
COMPUTES = [f"compute-{i}" for i in range(2)]
BURST = 24
IN_FLIGHT = 12  # pod creations at a time
GATE = "podtier.test/hold"
PEERS_NAMESPACE = "podtier"


class Cluster:
    """A running burst cluster: the plane, podtier's replicas, and the spreader if any."""

    def __init__(
        self,
        plane: ControlPlane,
        podtier: Server,
        replicas: list[Server],
        spreader: Spreader | None = None,
    ) -> None:
        self.plane = plane
        self.podtier = podtier  # the first replica (its /metrics, for waits)
        self.replicas = replicas
        self.spreader = spreader

    def podtier_free(self, pool: str, resource: str) -> float:
        """What podtier's headroom has free in `pool`, from its /metrics."""
        prefix = f'podtier_headroom_free{{pool="{pool}",resource="{resource}"}} '
        for line in self.podtier.client.get("/metrics").text.splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix) :])
        raise AssertionError(f"no {prefix.strip()} in podtier's /metrics")

    def wait_podtier_free(self, pool: str, resource: str, value: float) -> None:
        """Wait until podtier's picture shows `value` free (it has seen the events before)."""
        deadline = time.monotonic() + 30
        while (free := self.podtier_free(pool, resource)) != value:
            if time.monotonic() > deadline:
                raise AssertionError(f"podtier shows {free} {resource} free in {pool}, not {value}")
            time.sleep(0.05)


class BurstCluster:
    def __init__(self, plane: ControlPlane, tmp_dir: Path) -> None:
        self.plane = plane
        self.tmp_dir = tmp_dir
        self.servers: list[Server] = []
        self.stack = contextlib.ExitStack()

    def start(
        self,
        workers: int = 4,
        worker_cpu: str = "16",
        replicas: int = 1,
        policy: Path | None = None,
        serve_args: Sequence[str] = (),
    ) -> Cluster:
        plane = self.plane
        plane.reset()
        plane.ensure_namespace(NS)
        plane.ensure_namespace(PEERS_NAMESPACE)
        worker_memory = f"{int(worker_cpu) * 4}Gi"
        for i in range(workers):
            plane.add_node(
                f"worker-{i}",
                {"node-type": "worker"},
                [WORKER_TAINT],
                cpu=worker_cpu,
                memory=worker_memory,
            )
        for name in COMPUTES:
            plane.add_node(
                name, {"node-type": "compute-optimized"}, [COMPUTE_TAINT], cpu="5", memory="20Gi"
            )
        cert_dir = self.tmp_dir / "podtier-certs"
        if not (cert_dir / "ca.crt").exists():
            made = run_podtier("certs", "generate", "--out", str(cert_dir), "--ip", "127.0.0.1")
            assert made.returncode == 0, made.stderr
        key = cert_dir / "escalation.key"  # one key for every replica, as the chart's Secret
        if not key.exists():
            key.write_bytes(b"burst-cluster-escalation-key-" * 2)
        args = ["--cluster", "auto", "--kubeconfig", str(plane.kubeconfig)]
        args += ["--escalation-key", str(key)]
        if replicas > 1:
            args += ["--peers", "podtier-test"]
        if policy is not None:
            args += ["--policy", str(policy)]
        args += serve_args
        for i in range(replicas):
            env = {"POD_NAME": f"podtier-{i}", "POD_NAMESPACE": PEERS_NAMESPACE}
            self.servers.append(Server(cert_dir, args, env=env))
        for server in self.servers:
            server.wait_ready()
            wait_podtier_ready(server)
        url = self.servers[0].url
        spreader = None
        if replicas > 1:
            backends = [("127.0.0.1", s.port) for s in self.servers]
            spreader = self.stack.enter_context(Spreader(backends))
            url = f"https://127.0.0.1:{spreader.port}"
        plane.register_webhooks(url, (cert_dir / "ca.crt").read_bytes(), [NS])
        plane.wait_webhooks_active(NS)
        return Cluster(plane, self.servers[0], self.servers, spreader)

    def close(self) -> None:
        self.stack.close()
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self.plane.reset()


def wait_podtier_ready(podtier: Server, timeout: float = 30.0) -> None:
    """/readyz: certificates, policy, and the first list of nodes and pods (headroom synced)."""
    deadline = time.monotonic() + timeout
    while podtier.client.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"podtier not ready: {podtier.client.get('/readyz').text}")
        time.sleep(0.1)


def heavy_pod(name: str, gated: bool = False, tier: str = "heavy") -> dict[str, Any]:
    """A KubernetesExecutor worker pod as Airflow makes it, asking for `tier` (heavy); `gated`:
    held back from the scheduler by a scheduling gate until `ungate`."""
    task = f"task_{name.rsplit('-', 1)[-1]}"
    identity = {"dag_id": "etl_burst", "task_id": task, "try_number": "1"}
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "base",
                "image": "apache/airflow:2.9.1",
                "args": ["airflow", "tasks", "run", "etl_burst", task, "manual"],
            }
        ],
    }
    if gated:
        spec["schedulingGates"] = [{"name": GATE}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes_executor": "True",
                "podtier.io/tier": tier,
                "airflow-worker": "1",
                **identity,
                "run_id": "manual__2024-05-01T0000000000-a1b2c3d4e",
            },
            "annotations": {**identity, "run_id": "manual__2024-05-01T00:00:00+00:00"},
        },
        "spec": spec,
    }


def template_heavy_pod(name: str, tier: str = "heavy") -> dict[str, Any]:
    """Fixture b as Airflow built it (the docs' pod template: nodeSelector node-type=worker,
    the dedicated=worker toleration, ServiceAccount airflow-worker), named `name` and asking
    for `tier`. Its template resources are left to the tier, and its log volume (a
    PersistentVolumeClaim: this plane has no storage) is dropped."""
    pod = load_review("b")["request"]["object"]
    pod["metadata"]["name"] = name
    pod["metadata"]["labels"]["podtier.io/tier"] = tier
    spec = pod["spec"]
    spec["volumes"] = [v for v in spec["volumes"] if "persistentVolumeClaim" not in v]
    kept = {v["name"] for v in spec["volumes"]}
    base = spec["containers"][0]
    base.pop("resources")
    base["volumeMounts"] = [m for m in base["volumeMounts"] if m["name"] in kept]
    return pod


def ungate(plane: ControlPlane, names: Sequence[str]) -> None:
    for name in names:
        plane.core.patch_namespaced_pod(
            name, NS, [{"op": "remove", "path": "/spec/schedulingGates"}]
        )


def create_burst(
    plane: ControlPlane,
    names: Sequence[str],
    in_flight: int = IN_FLIGHT,
    tier_of: Callable[[str], str] = lambda name: "heavy",
    build: Callable[..., dict[str, Any]] = heavy_pod,
) -> None:
    """Create the pods with `in_flight` creations going on at any time."""
    with plane.api_client(pool_size=in_flight) as api, ThreadPoolExecutor(in_flight) as threads:
        core = kubernetes.client.CoreV1Api(api)
        list(
            threads.map(
                lambda name: core.create_namespaced_pod(NS, build(name, tier=tier_of(name))),
                names,
            )
        )


def summarize(outcomes: dict[str, PodOutcome]) -> dict[str, int]:
    pinned = Counter(o.annotations.get("podtier.io/pool") for o in outcomes.values())
    return {
        "pinned to compute": pinned["compute"],
        "pinned to worker": pinned["worker"],
        "bound": sum(1 for o in outcomes.values() if o.node),
        "unschedulable": sum(1 for o in outcomes.values() if o.unschedulable),
        # placed outside the replica's share: its share of every pool was full
        "borrowed": sum(
            1 for o in outcomes.values() if BORROWED in o.annotations.get("podtier.io/reason", "")
        ),
    }


BORROWED = "of this replica's share has room"


def describe(outcomes: dict[str, PodOutcome]) -> str:
    """Per pod: the pool podtier pinned, the node it found room on, where the pod is now."""
    lines = []
    for name, outcome in sorted(outcomes.items()):
        reason = outcome.annotations.get("podtier.io/reason", "").split("; ", 1)[-1]
        where = outcome.node or f"UNSCHEDULABLE: {outcome.unschedulable}"
        pool = outcome.annotations.get("podtier.io/pool")
        lines.append(f"  {name}: pool {pool} ({reason}) -> {where}")
    return "\n".join(lines)


def pools_of(outcomes: dict[str, PodOutcome]) -> dict[str, str]:
    """pod -> the pool its node belongs to (by node name), for bound pods."""
    return {n: str(o.node).rsplit("-", 1)[0] for n, o in outcomes.items() if o.node}


def assert_bound_in_their_pools(outcomes: dict[str, PodOutcome]) -> None:
    """Every pod bound, none Unschedulable, each on a node of the pool podtier wrote."""
    wrong = {
        name: (o.annotations.get("podtier.io/pool"), o.node, o.unschedulable)
        for name, o in outcomes.items()
        if not o.node
        or {"compute": "compute", "worker": "worker"}[o.annotations["podtier.io/pool"]]
        != str(o.node).rsplit("-", 1)[0]
    }
    assert wrong == {}, describe(outcomes)


def expect_pool_not_overbooked(summary: dict[str, int], expected: dict[str, int], why: str) -> None:
    """The summary's figures named in `expected` are those."""
    seen = {key: summary[key] for key in expected}
    assert seen == expected, f"{json.dumps(summary)} != {json.dumps(expected)}\n{why}"
