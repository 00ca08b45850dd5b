"""Random clusters and probe pods for the differential test of podtier's fit rule against the
real kube-scheduler (`differential.py` runs them).

Pure: `generate(seed, index)` depends on its arguments only (a `random.Random` seeded with
both), so a case is reproduced from its seed and index alone. A case has:

- nodes of random size (cpu, memory, a `pods` limit that is sometimes tiny, sometimes
  `nvidia.com/gpu` and `ephemeral-storage`), a `node-type` label from the pools (or a wrong
  one, or none) and noise labels, the pool's taint (or its key with another value, or none)
  and extra taints of every effect (PreferNoSchedule must not block); some cordoned, some
  NotReady as a cluster shows it (`NOT_READY`);
- existing pods bound with `spec.nodeName` (the scheduler is not asked), with several
  containers, init containers (some with `restartPolicy: Always`, which a 1.28 API server
  drops: its SidecarContainers feature gate is off), a RuntimeClass with pod overhead, GPUs,
  limits without requests (the API server copies them to requests), memory in milli-units
  (`128m`, a classic typo for 128Mi); some Succeeded or Failed (they must not count), some
  being deleted (they still count), some pending and unschedulable (they use nothing); nodes
  filled up to or past their `pods` limit;
- a probe pod for one pool (the default policy's, and two with other toleration shapes): its
  nodeSelector and tolerations, and random requests, or requests at the edge of one node's
  free capacity as podtier sees it (`Boundary`): exactly what is free, one unit more or one
  unit less, in one container or spread over containers, init containers, sidecars and pod
  overhead.

Shapes where podtier deliberately differs from the scheduler (docs/operations.md, "Where
podtier's fit rule and the scheduler's differ") are only made with `documented=True`: a
cordoned or NotReady node labelled for a pool that tolerates every taint, and a NotReady node
that carries no `node.kubernetes.io/not-ready:NoSchedule` taint (yet).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from podtier.webhook.core.policy import Pool
from podtier.webhook.policy.load import load_policy

POLICY = Path(__file__).resolve().parents[3] / "policies" / "default.yaml"
CASE_LABEL = "podtier-differential/case"
GPU = "nvidia.com/gpu"
STORAGE = "ephemeral-storage"
NOT_READY_KEY = "node.kubernetes.io/not-ready"
UNREACHABLE_KEY = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_KEY = "node.kubernetes.io/unschedulable"
UNIT = {"cpu": 1, GPU: 1000}  # the smallest step of a resource, in milli-units (else 1 unit)

# Pools beyond the default policy's, for toleration shapes it does not have: one key with any
# value and effect, and every taint (`operator: Exists` and no key), as a pool meant to "run
# wherever it is labelled" would have.
EXTRA_POOLS = (
    Pool("spot", {"node-type": "spot"}, ({"key": "spot", "operator": "Exists"},)),
    Pool("shared", {"node-type": "shared"}, ({"operator": "Exists"},)),
)
WILDCARD_POOL = "shared"
POOL_WEIGHTS = {"worker": 3, "compute": 2, "gpu": 2, "spot": 1, "shared": 1}
# The taint a pool's nodes carry, which its tolerations are for.
POOL_TAINTS = {
    "worker": {"key": "dedicated", "value": "worker", "effect": "NoSchedule"},
    "compute": {"key": "workload", "value": "heavy", "effect": "NoSchedule"},
    "gpu": {"key": GPU, "value": "present", "effect": "NoSchedule"},
    "spot": {"key": "spot", "value": "true", "effect": "NoExecute"},
    "shared": {"key": "team", "value": "data", "effect": "NoSchedule"},
}
EXTRA_TAINTS = (
    {"key": "maintenance", "value": "true", "effect": "NoExecute"},
    {"key": "maintenance", "value": "true", "effect": "PreferNoSchedule"},
    {"key": "flaky", "effect": "PreferNoSchedule"},
    {"key": "dedicated", "value": "worker", "effect": "NoExecute"},  # a pool's key, other effect
    {"key": "dedicated", "value": "other", "effect": "NoSchedule"},  # a pool's key, other value
    {"key": "spot", "value": "true", "effect": "NoSchedule"},
    {"key": "workload", "value": "heavy", "effect": "PreferNoSchedule"},
)
NOISE_LABELS = (
    {"topology.kubernetes.io/zone": "zone-a"},
    {"topology.kubernetes.io/zone": "zone-b"},
    {"team": "data"},
    {"node-type-hint": "worker"},
)
_NS = {"key": NOT_READY_KEY, "effect": "NoSchedule"}
_NE = {"key": NOT_READY_KEY, "effect": "NoExecute"}
# NotReady as a cluster shows it: (Ready condition status, the node.kubernetes.io taints).
NOT_READY: dict[str, tuple[str, tuple[dict[str, str], ...]]] = {
    "new": ("False", (_NS,)),  # registered NotReady: the API server's admission adds the taint
    "lost": ("False", (_NS, _NE)),  # went NotReady: the node lifecycle controller adds both
    "unreachable": (
        "Unknown",
        (
            {"key": UNREACHABLE_KEY, "effect": "NoSchedule"},
            {"key": UNREACHABLE_KEY, "effect": "NoExecute"},
        ),
    ),
}
# Documented only: NotReady before the node lifecycle controller has tainted it.
NOT_READY_UNTAINTED = {"untainted": ("False", ()), "noexecute-only": ("False", (_NE,))}
RUNTIME_CLASSES: dict[str, dict[str, str] | None] = {
    "kata": {"cpu": "250m", "memory": "120Mi"},
    "gvisor": {"cpu": "100m", "memory": "50M"},
    "runc": None,  # a RuntimeClass without overhead
}
CPUS = ("1", "2", "2500m", "4", "8", "16", "32")
MEMORIES = ("2Gi", "4Gi", "8Gi", "16Gi", "32Gi", "64Gi", "16G", "7800Mi")
GI = 2**30


@dataclass(frozen=True)
class NodeCase:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, str], ...]  # spec.taints as they end up, node.kubernetes.io ones too
    ready: str  # the Ready condition's status: "True", "False" or "Unknown"
    unschedulable: bool
    allocatable: Mapping[str, str]


@dataclass(frozen=True)
class PodCase:
    manifest: Mapping[str, Any]
    phase: str | None  # written through pods/status after creation, as a kubelet would
    terminating: bool  # deleted with a grace period that no kubelet ever confirms


@dataclass(frozen=True)
class Boundary:
    """The probe asks for what podtier sees free of `resource` on `node`, plus `delta` units,
    put `where`: in its first container, split over two containers, in an init container, in
    its first container less its RuntimeClass's overhead, or in an init container with
    `restartPolicy: Always` followed by a small regular one (with the SidecarContainers gate
    on, a sidecar: the probe then asks for a little more, as the later init container runs
    beside it)."""

    node: str
    resource: str
    delta: int
    where: str  # "container", "split", "init", "overhead" or "sidecar"


@dataclass(frozen=True)
class Probe:
    pool: Pool
    containers: tuple[Mapping[str, Any], ...]
    init_containers: tuple[Mapping[str, Any], ...]
    runtime_class: str | None
    boundary: Boundary | None

    def manifest(self, name: str, labels: Mapping[str, str], free: int = 0) -> dict[str, Any]:
        """The probe pod; `free`: what podtier sees free of the boundary's resource (milli)."""
        containers = [_copy(c) for c in self.containers]
        init = [_copy(c) for c in self.init_containers]
        if self.boundary is not None:
            self._place(self.boundary, free, containers, init)
        spec: dict[str, Any] = {
            "nodeSelector": dict(self.pool.node_selector),
            "tolerations": [dict(t) for t in self.pool.tolerations],
            "containers": containers,
        }
        if init:
            spec["initContainers"] = init
        if self.runtime_class:
            spec["runtimeClassName"] = self.runtime_class
        return {"metadata": {"name": name, "labels": dict(labels)}, "spec": spec}

    def _place(
        self,
        boundary: Boundary,
        free: int,
        containers: list[dict[str, Any]],
        init: list[dict[str, Any]],
    ) -> None:
        """Put the boundary amount where the boundary says, by the generator's own sums."""
        resource = boundary.resource
        unit = UNIT.get(resource, 1000)
        target = max((free // unit + boundary.delta) * unit, unit)
        parts = [(containers[0], target)]
        if boundary.where == "overhead" and self.runtime_class:
            overhead = (RUNTIME_CLASSES[self.runtime_class] or {}).get(resource)
            parts = [(containers[0], max(target - _milli(overhead or "0"), unit))]
        elif boundary.where == "split":
            first = target // unit // 2 * unit
            parts = [(containers[0], first), (containers[1], target - first)]
        elif boundary.where == "init":
            parts = [(init[0], target)]
        elif boundary.where == "sidecar":
            parts = [(init[0], target), (init[1], unit)]
        for part, milli in parts:
            if milli > 0:
                _request(part, resource, quantity(resource, milli))


@dataclass(frozen=True)
class Case:
    seed: int
    index: int
    nodes: tuple[NodeCase, ...]
    pods: tuple[PodCase, ...]
    probe: Probe
    shapes: frozenset[str]

    @property
    def id(self) -> str:
        return f"seed {self.seed} case {self.index}"


def quantity(resource: str, milli: int) -> str:
    """Milli-units as a quantity the API server takes: millicores for cpu, else whole units
    when they are whole."""
    if resource == "cpu":
        return f"{milli}m"
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


@cache
def pools() -> tuple[Pool, ...]:
    """The default policy's pools (read by podtier's own loader) and `EXTRA_POOLS`."""
    return (*load_policy([POLICY]).pools.values(), *EXTRA_POOLS)


def generate(seed: int, index: int, documented: bool = True) -> Case:
    rng = random.Random(f"{seed}:{index}")
    shapes: set[str] = set()
    nodes = [_node(rng, f"c{index}-n{j}", documented, shapes) for j in range(rng.randint(1, 7))]
    pods: list[PodCase] = []
    for node in nodes:
        pods.extend(_pods_on(rng, node, f"c{index}-{node.name.rsplit('-', 1)[1]}", shapes))
    if rng.random() < 0.1:
        pods.append(_pending(rng, f"c{index}-pending"))
        shapes.add("pending-pod")
    probe = _probe(rng, nodes, shapes)
    return Case(seed, index, tuple(nodes), tuple(pods), probe, frozenset(shapes))


# ---------------------------------------------------------------------- nodes


def _pick_pool(rng: random.Random, exclude: Sequence[str] = ()) -> Pool:
    choices = [p for p in pools() if p.name not in exclude]
    return rng.choices(choices, [POOL_WEIGHTS.get(p.name, 1) for p in choices])[0]


def _node(rng: random.Random, name: str, documented: bool, shapes: set[str]) -> NodeCase:
    roll = rng.random()
    state = "ready" if roll < 0.8 else "cordoned" if roll < 0.9 else "not-ready"
    if state != "ready" and not documented:
        pool = _pick_pool(rng, exclude=[WILDCARD_POOL])  # NodeUnschedulable / not-ready rule
    else:
        pool = _pick_pool(rng)
    labels: dict[str, str] = {}
    label_roll = rng.random()
    if label_roll < 0.88:
        labels.update(pool.node_selector)
    elif label_roll < 0.94:
        labels["node-type"] = rng.choice(["worker-old", "compute", "gpu-a100"])
        shapes.add("wrong-label")
    if rng.random() < 0.5:
        labels.update(rng.choice(NOISE_LABELS))
    taints: list[Mapping[str, str]] = []
    taint_roll = rng.random()
    if taint_roll < 0.75:
        taints.append(POOL_TAINTS[pool.name])
    elif taint_roll < 0.87:  # the pool's key with another value: an Equal toleration fails
        taints.append({**POOL_TAINTS[pool.name], "value": "other"})
        shapes.add("pool-taint-other-value")
    for taint in rng.sample(EXTRA_TAINTS, rng.choices([0, 1, 2], [14, 5, 1])[0]):
        if all((t["key"], t["effect"]) != (taint["key"], taint["effect"]) for t in taints):
            taints.append(taint)  # the API server wants one taint per key and effect
            shapes.add(f"taint-{taint['effect']}")
    allocatable = {
        "cpu": rng.choice(CPUS),
        "memory": rng.choice(MEMORIES),
        "pods": str(rng.choice([110] * 8 + [1, 2]))
        if rng.random() < 0.9
        else str(rng.randint(3, 5)),
    }
    if pool.name == "gpu" and rng.random() < 0.85 or rng.random() < 0.08:
        allocatable[GPU] = rng.choice(["1", "2", "4", "8"])
    if rng.random() < 0.2:
        allocatable[STORAGE] = rng.choice(["20Gi", "100Gi"])
    ready, unschedulable = "True", False
    if state == "cordoned":
        unschedulable = True
        if rng.random() < 0.5:  # the node lifecycle controller's taint for it
            taints.append({"key": UNSCHEDULABLE_KEY, "effect": "NoSchedule"})
        shapes.add("cordoned")
    elif state == "not-ready":
        variants = {**NOT_READY, **(NOT_READY_UNTAINTED if documented else {})}
        variant = rng.choice(sorted(variants))
        ready, extra = variants[variant]
        taints.extend(extra)
        shapes.add(f"not-ready-{variant}")
    if labels.get("node-type") == "shared" and state != "ready":
        shapes.add("documented-wildcard-pool-on-unusable-node")
    return NodeCase(name, labels, tuple(taints), ready, unschedulable, allocatable)


# ---------------------------------------------------------------------- existing pods


def _milli(quantity: str) -> int:
    """Enough of a quantity parser for the generator's own spellings (a whole number and a
    suffix), so its sums do not lean on podtier's code."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    for suffix, factor in (("Gi", GI), ("Mi", 2**20), ("G", 10**9), ("M", 10**6)):
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor * 1000
    return int(quantity) * 1000


def _cpu(milli: float) -> str:
    return f"{max(int(milli), 1)}m"


def _memory(rng: random.Random, milli: float) -> str:
    bytes_ = max(int(milli / 1000), 1)
    spelling = rng.random()
    if spelling < 0.5:
        return f"{max(bytes_ // 2**20, 1)}Mi"
    if spelling < 0.8:
        return str(bytes_)
    return f"{max(bytes_ // 10**6, 1)}M"


def container(name: str, requests: Mapping[str, str], limits_only: bool = False) -> dict[str, Any]:
    """A container asking for `requests` (or with them as limits only, which the API server
    copies to requests)."""
    resources = {"limits": dict(requests)} if limits_only else {"requests": dict(requests)}
    if GPU in requests and not limits_only:
        resources["limits"] = {GPU: requests[GPU]}  # extended resources: limits == requests
    return {"name": name, "image": "busybox", "resources": resources if requests else {}}


def _pods_on(rng: random.Random, node: NodeCase, prefix: str, shapes: set[str]) -> list[PodCase]:
    limit = int(node.allocatable["pods"])
    if limit <= 5:
        count = max(limit + rng.choice([-1, 0, 0, 0, 1]), 0)
        shapes.add("pods-limit-full" if count >= limit else "pods-limit")
    else:
        count = rng.randint(0, 5)
    if not count:
        return []
    cpu = _milli(node.allocatable["cpu"])
    memory = _milli(node.allocatable["memory"])
    fill = rng.uniform(0.0, 1.0)
    gpus = int(node.allocatable.get(GPU, "0"))
    typos = rng.random() < 0.15  # every pod here has a sidecar with memory like 128m
    out = []
    for j in range(count):
        share = fill / count * rng.uniform(0.5, 1.5)
        pod = _bound_pod(
            rng, f"{prefix}-p{j}", node, (cpu * share, memory * share), gpus, typos, shapes
        )
        out.append(pod)
    return out


def _bound_pod(
    rng: random.Random,
    name: str,
    node: NodeCase,
    share: tuple[float, float],
    gpus: int,
    typos: bool,
    shapes: set[str],
) -> PodCase:
    cpu, memory = share
    main: dict[str, str] = {}
    if rng.random() < 0.93:
        main["cpu"] = _cpu(cpu)
    if rng.random() < 0.93:
        main["memory"] = _memory(rng, memory)
    if gpus and rng.random() < 0.5:
        main[GPU] = str(rng.randint(1, gpus))
        shapes.add("gpu-pod")
    if STORAGE in node.allocatable and rng.random() < 0.4:
        main[STORAGE] = f"{rng.randint(1, 30)}Gi"
        shapes.add("storage-pod")
    limits_only = rng.random() < 0.1
    if limits_only:
        shapes.add("limits-only")
    containers = [container("base", main, limits_only)]
    for k in range(rng.choice([0, 0, 1, 2]) or int(typos)):
        side = {"cpu": _cpu(rng.uniform(10, 300)), "memory": f"{rng.randint(16, 512)}Mi"}
        if typos or rng.random() < 0.05:
            side["memory"] = f"{rng.randint(1, 999)}m"  # 128m meant as 128Mi
            shapes.add("memory-milli")
        containers.append(container(f"sidecar-{k}", side))
        shapes.add("several-containers")
    init = []
    for k in range(rng.choice([0, 0, 0, 1, 2])):
        requests = {"cpu": _cpu(cpu * rng.uniform(0.2, 1.3)), "memory": _memory(rng, memory * 0.5)}
        init_container = container(f"init-{k}", requests)
        if rng.random() < 0.3:
            init_container["restartPolicy"] = "Always"  # dropped by a 1.28 API server
            shapes.add("init-restart-always")
        init.append(init_container)
        shapes.add("init-containers")
    spec: dict[str, Any] = {"nodeName": node.name, "containers": containers}
    if init:
        spec["initContainers"] = init
    if rng.random() < 0.2:
        spec["runtimeClassName"] = rng.choice(sorted(RUNTIME_CLASSES))
        shapes.add("runtime-class")
    phase_roll = rng.random()
    phase = None
    terminating = False
    if phase_roll < 0.1:
        phase = "Succeeded"
    elif phase_roll < 0.15:
        phase = "Failed"
    elif phase_roll < 0.2:
        terminating = True
        shapes.add("terminating-pod")
    elif phase_roll < 0.4:
        phase = "Running"
    if phase in ("Succeeded", "Failed"):
        spec["restartPolicy"] = "Never"
        shapes.add("finished-pod")
    return PodCase({"metadata": {"name": name}, "spec": spec}, phase, terminating)


def _pending(rng: random.Random, name: str) -> PodCase:
    """A pod no node will take: the scheduler keeps it waiting and counts it nowhere."""
    requests = {"cpu": _cpu(rng.uniform(100, 8000)), "memory": f"{rng.randint(1, 16)}Gi"}
    spec = {"nodeSelector": {"node-type": "nowhere"}, "containers": [container("base", requests)]}
    return PodCase({"metadata": {"name": name}, "spec": spec}, None, False)


# ---------------------------------------------------------------------- the probe


def _probe(rng: random.Random, nodes: Sequence[NodeCase], shapes: set[str]) -> Probe:
    labelled = [p for p in pools() if any(_matches(p, n) for n in nodes)]
    pool = rng.choice(labelled) if labelled and rng.random() < 0.9 else _pick_pool(rng)
    shapes.add(f"pool-{pool.name}")
    if rng.random() < 0.6:
        return _boundary_probe(rng, pool, nodes, shapes)
    main: dict[str, str] = {}
    if rng.random() < 0.9:
        main["cpu"] = _cpu(math.exp(rng.uniform(math.log(50), math.log(8000))))
    if rng.random() < 0.9:
        main["memory"] = _memory(
            rng, math.exp(rng.uniform(math.log(2**26), math.log(16 * GI))) * 1000
        )
    if pool.name == "gpu" and rng.random() < 0.85 or rng.random() < 0.05:
        main[GPU] = str(rng.choice([1, 1, 2, 4]))
    if rng.random() < 0.1:
        main[STORAGE] = f"{rng.randint(1, 60)}Gi"
    containers = [container("base", main)]
    if rng.random() < 0.3:
        containers.append(container("sidecar", {"cpu": _cpu(rng.uniform(10, 500))}))
    init = ()
    if rng.random() < 0.25:
        init = (container("init", {"cpu": _cpu(rng.uniform(100, 8000)), "memory": "1Gi"}),)
        shapes.add("probe-init")
    runtime_class = rng.choice(sorted(RUNTIME_CLASSES)) if rng.random() < 0.15 else None
    if runtime_class:
        shapes.add("probe-runtime-class")
    return Probe(pool, tuple(containers), init, runtime_class, None)


def _boundary_probe(
    rng: random.Random, pool: Pool, nodes: Sequence[NodeCase], shapes: set[str]
) -> Probe:
    usable = [n for n in nodes if _matches(pool, n) and n.ready == "True" and not n.unschedulable]
    node = rng.choice(usable if usable and rng.random() < 0.85 else list(nodes))
    resources = ["cpu", "cpu", "memory", "memory"] + [
        r for r in (GPU, STORAGE) if r in node.allocatable
    ]
    resource = rng.choice(resources)
    delta = rng.choice([0, 0, 0, 1, 1, -1])
    wheres = ["container", "container", "split", "init", "sidecar"]
    if resource in ("cpu", "memory"):
        wheres.append("overhead")
    where = rng.choice(wheres)
    shapes.update({f"boundary-{resource}-{delta:+d}", f"boundary-in-{where}"})
    small = {"cpu": _cpu(rng.uniform(10, 200)), "memory": f"{rng.randint(16, 256)}Mi"}
    small.pop(resource, None)
    if pool.name == "gpu" and resource != GPU and rng.random() < 0.5:
        small[GPU] = "1"
    containers = [container("base", small)]
    init: tuple[Mapping[str, Any], ...] = ()
    runtime_class = None
    if where == "split":
        containers.append(container("helper", {}))
    elif where == "init":
        init = (container("setup", {}),)
    elif where == "sidecar":
        init = ({**container("proxy", {}), "restartPolicy": "Always"}, container("setup", {}))
    elif where == "overhead":
        runtime_class = rng.choice(["kata", "gvisor"])
    elif rng.random() < 0.2:  # smaller than the boundary container: changes nothing
        init = (container("setup", {"cpu": "1m", "memory": "1Mi"}),)
    boundary = Boundary(node.name, resource, delta, where)
    return Probe(pool, tuple(containers), init, runtime_class, boundary)


def _request(container: dict[str, Any], resource: str, amount: str) -> None:
    resources = container.setdefault("resources", {})
    resources.setdefault("requests", {})[resource] = amount
    if resource == GPU:  # extended resources: limits == requests
        resources.setdefault("limits", {})[resource] = amount


def _matches(pool: Pool, node: NodeCase) -> bool:
    return all(node.labels.get(k) == v for k, v in pool.node_selector.items())


def _copy(container: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(container)
    out["resources"] = {k: dict(v) for k, v in container.get("resources", {}).items()}
    return out
