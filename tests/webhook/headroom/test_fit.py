"""Every fit rule, judged per node as the scheduler's NodeResourcesFit does, through the three
feeds: watch events, a `kubectl get nodes,pods -A -o json` file, and the live watch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from podtier.webhook.headroom import ClusterHeadroom
from tests.webhook.headroom.builders import POOLS, init_container, node, pod, requests
from tests.webhook.headroom.feeds import from_events, from_file, from_live

MAINTENANCE = {"key": "maintenance", "value": "true", "effect": "NoExecute"}
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}
EVERYTHING = [{"operator": "Exists"}]

CASES = [
    pytest.param(
        [node("w1"), node("w2"), pod("a", "w1", cpu="3"), pod("b", "w2", cpu="3")],
        "worker",
        None,
        requests(cpu="1500m"),
        None,
        id="fragmented-pool-sum-fits-but-no-node-does",
    ),
    pytest.param(
        [node("w1"), node("w2"), pod("a", "w1", cpu="3500m")],
        "worker",
        None,
        requests(cpu="2"),
        "w2",
        id="the-node-with-room-is-chosen",
    ),
    pytest.param(
        [node("w1", unschedulable=True)],
        "worker",
        None,
        requests(),
        None,
        id="cordoned-node",
    ),
    pytest.param([node("w1", ready=False)], "worker", None, requests(), None, id="not-ready-node"),
    pytest.param(
        [node("w1", taints=[WORKER_TAINT, MAINTENANCE])],
        "worker",
        None,
        requests(),
        None,
        id="untolerated-noexecute-taint",
    ),
    pytest.param(
        [node("w1", taints=[WORKER_TAINT, {**MAINTENANCE, "effect": "PreferNoSchedule"}])],
        "worker",
        None,
        requests(),
        "w1",
        id="prefer-no-schedule-taint-does-not-block",
    ),
    pytest.param(
        [node("w1")],
        "worker",
        [],
        requests(),
        None,
        id="pool-taint-without-the-pool-toleration",
    ),
    pytest.param(
        [node("w1", taints=[WORKER_TAINT, MAINTENANCE])],
        "worker",
        EVERYTHING,
        requests(),
        "w1",
        id="exists-with-empty-key-tolerates-every-taint",
    ),
    pytest.param(
        [node("w1", taints=[WORKER_TAINT, MAINTENANCE])],
        "worker",
        POOLS["worker"][1] + [{"key": "maintenance", "operator": "Exists"}],
        requests(),
        "w1",
        id="exists-with-empty-effect-tolerates-every-effect",
    ),
    pytest.param(
        [node("w1", taints=[{"key": "dedicated", "value": "other", "effect": "NoSchedule"}])],
        "worker",
        None,
        requests(),
        None,
        id="equal-toleration-needs-the-same-value",
    ),
    pytest.param(
        [node("c1", pool="compute")],
        "worker",
        None,
        requests(),
        None,
        id="node-selector-must-match",
    ),
    pytest.param(
        [
            node("w1"),
            pod("done", "w1", cpu="2", phase="Succeeded"),
            pod("failed", "w1", cpu="1", phase="Failed"),
            pod("running", "w1", cpu="1"),
        ],
        "worker",
        None,
        requests(cpu="3"),
        "w1",
        id="finished-pods-free-their-capacity",
    ),
    pytest.param(
        [node("w1"), pod("pending", cpu="3", phase="Pending")],
        "worker",
        None,
        requests(cpu="3"),
        "w1",
        id="unbound-pod-without-pool-uses-nothing",
    ),
    pytest.param(
        [node("w1"), pod("a", "w1", cpu="1", init=[init_container("proxy", "2", sidecar=True)])],
        "worker",
        None,
        requests(cpu="1500m"),
        None,
        id="sidecar-requests-add-to-the-app-containers",
    ),
    pytest.param(
        [node("w1"), pod("a", "w1", cpu="1", init=[init_container("migrate", "3")])],
        "worker",
        None,
        requests(cpu="1500m"),
        None,
        id="largest-init-container-counts-when-bigger",
    ),
    pytest.param(
        [node("w1"), pod("a", "w1", cpu="1", init=[init_container("migrate", "500m")])],
        "worker",
        None,
        requests(cpu="3"),
        "w1",
        id="small-init-container-adds-nothing",
    ),
    pytest.param(
        [node("w1"), pod("a", "w1", cpu="1", overhead={"cpu": "2"})],
        "worker",
        None,
        requests(cpu="1500m"),
        None,
        id="pod-overhead-counts",
    ),
    pytest.param(
        [node("w1", memory="8Gi"), pod("a", "w1", cpu="100m", memory="6Gi")],
        "worker",
        None,
        requests(cpu="100m", memory="4Gi"),
        None,
        id="memory-is-judged-per-node",
    ),
    pytest.param(
        [node("g1", pool="gpu", gpus="1"), pod("a", "g1", gpus="1")],
        "gpu",
        None,
        requests(gpus=1),
        None,
        id="gpus-in-use-are-not-free",
    ),
    pytest.param(
        [node("g1", pool="gpu", gpus="2"), pod("a", "g1", gpus="1")],
        "gpu",
        None,
        requests(gpus=1),
        "g1",
        id="a-free-gpu-fits",
    ),
    pytest.param(
        [node("g1", pool="gpu")],
        "gpu",
        None,
        requests(gpus=1),
        None,
        id="node-without-gpus-in-allocatable",
    ),
    pytest.param(
        [node("w1", pods="2"), pod("a", "w1", cpu="10m"), pod("b", "w1", cpu="10m")],
        "worker",
        None,
        requests(cpu="10m"),
        None,
        id="pods-slot-full",
    ),
    pytest.param(
        [
            node("w1", memory="1Gi"),
            pod("a", "w1", cpu="10m", memory="128m"),
            pod("b", "w1", cpu="10m", memory="128m"),
        ],
        "worker",
        None,
        requests(cpu="10m", memory=str(2**30 - 1)),
        None,
        id="memory-typed-in-milli-units-takes-a-whole-byte-per-pod",
    ),
    pytest.param(
        [node("w1", memory="1Gi"), pod("a", "w1", cpu="10m", memory="128m")],
        "worker",
        None,
        requests(cpu="10m", memory=str(2**30 - 1)),
        "w1",
        id="one-pod-with-memory-in-milli-units-takes-one-byte",
    ),
    pytest.param(
        [node("w1", memory=f"{2**30 * 1000 + 500}m")],
        "worker",
        None,
        requests(cpu="10m", memory=str(2**30 + 1)),
        "w1",
        id="allocatable-memory-counts-in-whole-bytes-rounded-up",
    ),
    pytest.param(
        [node("w1"), pod("queued", cpu="3", phase="Pending", pool="worker")],
        "worker",
        None,
        requests(cpu="2"),
        None,
        id="pending-pod-with-podtier-pool-holds-capacity",
    ),
    pytest.param(
        [
            node("w1"),
            node("c1", pool="compute"),
            pod("queued", cpu="3", phase="Pending", pool="compute"),
        ],
        "worker",
        None,
        requests(cpu="2"),
        "w1",
        id="pending-pod-of-another-pool-holds-elsewhere",
    ),
]


@contextmanager
def picture(feed: str, objects: list[dict[str, Any]], tmp_path: Path) -> Iterator[ClusterHeadroom]:
    if feed == "events":
        yield from_events(objects)
    elif feed == "file":
        yield from_file(objects, tmp_path)
    else:
        with from_live(objects) as headroom:
            yield headroom


@pytest.mark.parametrize("feed", ["events", "file", "live"])
@pytest.mark.parametrize(("objects", "pool", "tolerations", "wanted", "expected"), CASES)
def test_fit(
    feed: str,
    objects: list[dict[str, Any]],
    pool: str,
    tolerations: list[dict[str, Any]] | None,
    wanted: dict[str, int],
    expected: str | None,
    tmp_path: Path,
) -> None:
    selector, pool_tolerations = POOLS[pool]
    with (
        picture(feed, objects, tmp_path) as headroom,
        headroom.transaction(time.monotonic()) as view,
    ):
        assert view.status.known, view.status.reason
        chosen = view.find_node(
            selector, pool_tolerations if tolerations is None else tolerations, wanted
        )
    assert chosen == expected
