"""podtier's fit rule agrees with the real kube-scheduler 1.28's on a fixed sample of random
clusters: for each, podtier finds room for the probe pod in its pool exactly when the scheduler
binds it, and then on the node the scheduler chose (`differential.py` runs a case,
`scheduler_cases.py` makes them; `bench/scheduler_differential.py` runs 500 and more).

The sample leaves out the shapes where podtier differs on purpose (`documented=False`; see
docs/operations.md, "Where podtier's fit rule and the scheduler's differ"):
- a cordoned node labelled for a pool that tolerates every taint: the scheduler's
  NodeUnschedulable plugin admits a pod that tolerates `node.kubernetes.io/unschedulable`;
- a NotReady node labelled for such a pool, or not (yet) tainted
  `node.kubernetes.io/not-ready:NoSchedule`: the scheduler reads that taint (TaintToleration),
  never the Ready condition, and every pod tolerates the NoExecute one for 300 s
  (DefaultTolerationSeconds).

Two control planes: the default one (the SidecarContainers feature gate off, as in 1.28, so
the API server drops `restartPolicy: Always` from init containers), and one with the gate on
(as from 1.29), where those run as sidecars.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controlplane import ControlPlane, control_plane, running_control_plane  # noqa: F401
from tests.webhook.headroom.differential import Differential, Verdict
from tests.webhook.headroom.scheduler_cases import generate

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
DOCUMENTED_SHAPES = {
    "documented-wildcard-pool-on-unusable-node",
    "not-ready-untainted",
    "not-ready-noexecute-only",
}


@pytest.fixture(scope="module")
def sidecar_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    yield from running_control_plane(request, tmp_path_factory, {"SidecarContainers": True})


def run_sample(plane: ControlPlane, indexes: range) -> list[Verdict]:
    plane.reset()
    runner = Differential(plane)
    try:
        return [runner.run(generate(SEED, index, documented=False)) for index in indexes]
    finally:
        runner.close()


def expect_agreement(verdicts: list[Verdict]) -> None:
    disagreements = [v.report() for v in verdicts if not v.agrees]
    assert not disagreements, f"{len(disagreements)} disagreement(s):\n" + "\n".join(
        disagreements
    )
    # Not one-sided: some probes found room and some did not.
    assert {v.scheduler is not None for v in verdicts} == {True, False}


def test_podtier_finds_room_exactly_where_the_scheduler_binds(
    control_plane: ControlPlane,  # noqa: F811
) -> None:
    verdicts = run_sample(control_plane, CASES)
    expect_agreement(verdicts)
    assert not any("sidecars" in v.stored for v in verdicts)  # dropped by a 1.28 API server
    assert any("overhead" in v.stored for v in verdicts)


def test_with_sidecar_containers_podtier_counts_them_as_the_scheduler_does(
    sidecar_plane: ControlPlane,
) -> None:
    verdicts = run_sample(sidecar_plane, SIDECAR_CASES)
    expect_agreement(verdicts)
    assert any("sidecars" in v.stored for v in verdicts)


def test_the_sample_has_every_shape_and_none_podtier_differs_on_by_design() -> None:
    shapes = set().union(
        *(generate(SEED, i, documented=False).shapes for i in (*CASES, *SIDECAR_CASES))
    )
    assert SHAPES - shapes == set()
    assert shapes & DOCUMENTED_SHAPES == set()
