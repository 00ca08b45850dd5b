"""podtier's fit rule agrees with the real kube-scheduler 1.28's: for each case, podtier finds
room for the probe pod in its pool exactly when the scheduler binds it, and then on the node
the scheduler chose (`differential.py` runs a case; `bench/scheduler_differential.py` runs 500
and more).

Two kinds of cases, each on two control planes (the SidecarContainers feature gate off, as in
1.28, where the API server drops `restartPolicy: Always` from init containers; and on, as from
1.29, where those run as sidecars):
- pinned cases, one per rule, that also say what the scheduler does: a probe asking for exactly
  what podtier sees free binds, one unit more does not;
- a fixed sample of random clusters (`scheduler_cases.py`).

The sample leaves out the shapes where podtier differs on purpose (`documented=False`; see
docs/operations.md, "Where podtier's fit rule and the scheduler's differ"):
- a cordoned node labelled for a pool that tolerates every taint: the scheduler's
  NodeUnschedulable plugin admits a pod that tolerates `node.kubernetes.io/unschedulable`;
- a NotReady node labelled for such a pool, or not (yet) tainted
  `node.kubernetes.io/not-ready:NoSchedule`: the scheduler reads that taint (TaintToleration),
  never the Ready condition, and every pod tolerates the NoExecute one for 300 s
  (DefaultTolerationSeconds).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from tests.controlplane import ControlPlane, control_plane, running_control_plane  # noqa: F401
from tests.webhook.headroom.differential import Differential
from tests.webhook.headroom.scheduler_cases import (
    GPU,
    NOT_READY,
    POOL_TAINTS,
    Boundary,
    Case,
    NodeCase,
    PodCase,
    Probe,
    container,
    generate,
    pools,
)

SEED = 12
CASES = range(40)
SIDECAR_CASES = range(40, 60)
# Shapes the sample must have, or it tests less than it says.
SHAPES = {
    "cordoned",
    "not-ready-new",
    "not-ready-lost",
    "not-ready-unreachable",
    "taint-NoExecute",
    "taint-PreferNoSchedule",
    "pool-taint-other-value",
    "wrong-label",
    "pods-limit-full",
    "init-containers",
    "init-restart-always",
    "several-containers",
    "runtime-class",
    "gpu-pod",
    "storage-pod",
    "limits-only",
    "memory-milli",
    "finished-pod",
    "terminating-pod",
    "boundary-cpu-+0",
    "boundary-cpu-+1",
    "boundary-memory-+0",
    "boundary-memory-+1",
    "boundary-in-split",
    "boundary-in-init",
    "boundary-in-overhead",
    "boundary-in-sidecar",
}
PINNED_INDEX = itertools.count(1000)  # pinned cases' names: unique across the module
DOCUMENTED_SHAPES = {
    "documented-wildcard-pool-on-unusable-node",
    "not-ready-untainted",
    "not-ready-noexecute-only",
}


# ---------------------------------------------------------------------- pinned cases


def node(
    name: str,
    pool: str = "worker",
    taints: Sequence[Mapping[str, str]] | None = None,
    ready: str = "True",
    unschedulable: bool = False,
    **allocatable: str,
) -> NodeCase:
    selector = next(p for p in pools() if p.name == pool).node_selector
    resources = {"cpu": "4", "memory": "8Gi", "pods": "110", **allocatable}
    taints = [POOL_TAINTS[pool]] if taints is None else taints
    return NodeCase(name, selector, tuple(taints), ready, unschedulable, resources)


def pod(
    name: str,
    on: str,
    *containers: Mapping[str, Any],
    init: Sequence[Mapping[str, Any]] = (),
    phase: str | None = None,
    terminating: bool = False,
    runtime_class: str | None = None,
) -> PodCase:
    spec: dict[str, Any] = {"nodeName": on, "containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    if phase in ("Succeeded", "Failed"):
        spec["restartPolicy"] = "Never"
    return PodCase({"metadata": {"name": name}, "spec": spec}, phase, terminating)


def cpu(name: str, amount: str) -> dict[str, Any]:
    return container(name, {"cpu": amount, "memory": "64Mi"})


def sidecar(name: str, amount: str) -> dict[str, Any]:
    return {**cpu(name, amount), "restartPolicy": "Always"}


def probe(node: str, resource: str = "cpu", delta: int = 0, pool: str = "worker") -> Probe:
    """Asks for what podtier sees free of `resource` on `node`, plus `delta` units."""
    small = {"cpu": "10m", "memory": "16Mi"}
    small.pop(resource, None)
    chosen = next(p for p in pools() if p.name == pool)
    boundary = Boundary(node, resource, delta, "container")
    return Probe(chosen, (container("base", small),), (), None, boundary)


def pinned(
    nodes: list[NodeCase], pods: list[PodCase], the_probe: Probe, *, id: str, binds: bool
) -> Any:
    """A case of nodes, pods and a probe; `binds`: whether the scheduler binds the probe."""
    return pytest.param(nodes, pods, the_probe, binds, id=id)


def prefixed(
    index: int, nodes: Sequence[NodeCase], pods: Sequence[PodCase], the_probe: Probe
) -> Case:
    """The case with its names made unique (`c<index>-`), as the runner needs them."""

    def name(short: str) -> str:
        return f"c{index}-{short}"

    renamed = []
    for item in pods:
        spec = {**item.manifest["spec"], "nodeName": name(item.manifest["spec"]["nodeName"])}
        manifest = {"metadata": {"name": name(item.manifest["metadata"]["name"])}, "spec": spec}
        renamed.append(dataclasses.replace(item, manifest=manifest))
    assert the_probe.boundary is not None
    boundary = dataclasses.replace(the_probe.boundary, node=name(the_probe.boundary.node))
    return Case(
        0,
        index,
        tuple(dataclasses.replace(n, name=name(n.name)) for n in nodes),
        tuple(renamed),
        dataclasses.replace(the_probe, boundary=boundary),
        frozenset(),
    )


PINNED = [
    pinned(
        [node("n0")],
        [
            pod("big-init", "n0", cpu("app", "500m"), init=[cpu("setup", "2")]),
            pod("two-containers", "n0", cpu("app", "700m"), cpu("log", "300m")),
        ],
        probe("n0"),
        id="the-free-cpu-beside-init-containers-and-several-containers-fits",
        binds=True,
    ),
    pinned(
        [node("n0")],
        [pod("big-init", "n0", cpu("app", "500m"), init=[cpu("setup", "2")])],
        probe("n0", delta=1),
        id="one-millicore-more-does-not-fit",
        binds=False,
    ),
    pinned(
        [node("n0")],
        [pod("kata", "n0", cpu("app", "1"), runtime_class="kata")],
        probe("n0"),
        id="runtime-class-overhead-counts",
        binds=True,
    ),
    pinned(
        [node("n0")],
        [
            pod(f"typo-{i}", "n0", cpu("app", "100m"), container("log", {"memory": "300m"}))
            for i in range(3)
        ],
        probe("n0", "memory"),
        id="memory-written-in-milli-units-takes-a-whole-byte-per-pod",
        binds=True,
    ),
    pinned(
        [node("n0")],
        [
            pod("done", "n0", cpu("app", "3"), phase="Succeeded"),
            pod("failed", "n0", cpu("app", "3"), phase="Failed"),
            pod("running", "n0", cpu("app", "1"), phase="Running"),
        ],
        probe("n0"),
        id="finished-pods-free-their-room",
        binds=True,
    ),
    pinned(
        [node("n0")],
        [pod("leaving", "n0", cpu("app", "3"), terminating=True)],
        probe("n0"),
        id="a-pod-being-deleted-still-counts",
        binds=True,
    ),
    pinned(
        [node("n0", pods="2")],
        [pod("a", "n0", cpu("app", "10m")), pod("b", "n0", cpu("app", "10m"))],
        probe("n0"),
        id="a-node-at-its-pods-limit-takes-no-more",
        binds=False,
    ),
    pinned(
        [node("n0", pods="3")],
        [pod("a", "n0", cpu("app", "10m")), pod("b", "n0", cpu("app", "10m"))],
        probe("n0"),
        id="one-pod-under-the-limit-takes-one-more",
        binds=True,
    ),
    pinned(
        [
            node(
                "n0", taints=[POOL_TAINTS["worker"], {"key": "flaky", "effect": "PreferNoSchedule"}]
            )
        ],
        [],
        probe("n0"),
        id="prefer-no-schedule-does-not-block",
        binds=True,
    ),
    pinned(
        [node("n0", taints=[{**POOL_TAINTS["worker"], "effect": "NoExecute"}])],
        [],
        probe("n0"),
        id="the-pool-taint-with-another-effect-blocks",
        binds=False,
    ),
    pinned(
        [node("n0", taints=[{**POOL_TAINTS["worker"], "value": "other"}])],
        [],
        probe("n0"),
        id="the-pool-taint-with-another-value-blocks",
        binds=False,
    ),
    pinned(
        [node("n0", "spot", taints=[POOL_TAINTS["spot"], {"key": "spot", "effect": "NoSchedule"}])],
        [],
        probe("n0", pool="spot"),
        id="exists-without-effect-tolerates-every-effect-and-value-of-its-key",
        binds=True,
    ),
    pinned(
        [node("n0", unschedulable=True)],
        [],
        probe("n0"),
        id="a-cordoned-node-takes-nothing",
        binds=False,
    ),
    pinned(
        [node("n0", taints=[POOL_TAINTS["worker"], *NOT_READY["lost"][1]], ready="False")],
        [],
        probe("n0"),
        id="a-not-ready-node-takes-nothing",
        binds=False,
    ),
    pinned(
        [node("n0", "compute")],
        [],
        probe("n0"),
        id="a-node-of-another-pool-takes-nothing",
        binds=False,
    ),
    pinned(
        [node("g0", "gpu", **{GPU: "4"})],
        [pod("three", "g0", container("cuda", {GPU: "3"}))],
        probe("g0", GPU, pool="gpu"),
        id="the-last-free-gpu-fits",
        binds=True,
    ),
    pinned(
        [node("g0", "gpu", **{GPU: "4"})],
        [pod("three", "g0", container("cuda", {GPU: "3"}))],
        probe("g0", GPU, delta=1, pool="gpu"),
        id="one-gpu-more-does-not-fit",
        binds=False,
    ),
    pinned(
        [node("n0")],
        [pod("proxied", "n0", cpu("app", "1"), init=[sidecar("proxy", "500m")])],
        probe("n0"),
        id="a-sidecar-adds-to-the-app-containers",
        binds=True,
    ),
    pinned(
        [node("n0")],
        [
            pod(
                "proxied",
                "n0",
                cpu("app", "100m"),
                init=[sidecar("proxy", "500m"), cpu("setup", "2")],
            )
        ],
        probe("n0"),
        id="an-init-container-after-a-sidecar-runs-beside-it",
        binds=True,
    ),
]


# ---------------------------------------------------------------------- the planes


@pytest.fixture(scope="module")
def sidecar_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    yield from running_control_plane(request, tmp_path_factory, {"SidecarContainers": True})


@pytest.fixture(scope="module", params=["1.28-defaults", "sidecar-containers"])
def runner(request: pytest.FixtureRequest) -> Iterator[Differential]:
    """A runner on each plane in turn (the planes start only when a test asks for them)."""
    fixture = "control_plane" if request.param == "1.28-defaults" else "sidecar_plane"
    plane: ControlPlane = request.getfixturevalue(fixture)
    plane.reset()
    differential = Differential(plane)
    yield differential
    differential.close()


def sidecars_on(runner: Differential) -> bool:
    """The gate, or a version that runs sidecars by default (1.34 cannot turn them off)."""
    return runner.plane.sidecars_by_default()


# ---------------------------------------------------------------------- the tests


@pytest.mark.parametrize(("nodes", "pods", "the_probe", "binds"), PINNED)
def test_pinned_case(
    runner: Differential,
    nodes: list[NodeCase],
    pods: list[PodCase],
    the_probe: Probe,
    binds: bool,
) -> None:
    verdict = runner.run(prefixed(next(PINNED_INDEX), nodes, pods, the_probe))
    assert verdict.agrees, verdict.report()
    assert (verdict.scheduler is not None) is binds, verdict.report()


def test_podtier_finds_room_exactly_where_the_scheduler_binds(runner: Differential) -> None:
    indexes = SIDECAR_CASES if sidecars_on(runner) else CASES
    verdicts = [runner.run(generate(SEED, index, documented=False)) for index in indexes]
    disagreements = [v.report() for v in verdicts if not v.agrees]
    assert not disagreements, f"{len(disagreements)} disagreement(s):\n" + "\n".join(disagreements)
    # Not one-sided: some probes found room and some did not.
    assert {v.scheduler is not None for v in verdicts} == {True, False}
    # The API server kept what the plane's feature gates say.
    assert any("sidecars" in v.stored for v in verdicts) is sidecars_on(runner)
    assert any("overhead" in v.stored for v in verdicts)


def test_the_sample_has_every_shape_and_none_podtier_differs_on_by_design() -> None:
    shapes = set().union(
        *(generate(SEED, i, documented=False).shapes for i in (*CASES, *SIDECAR_CASES))
    )
    assert SHAPES - shapes == set()
    assert shapes & DOCUMENTED_SHAPES == set()
