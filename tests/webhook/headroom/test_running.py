"""The outlook the tracker gives the wait decision: each node's free room with podtier's holds
given back, the holds listed oldest first, and the pods running there with their Airflow task
and start time (`headroom.running`, a pod listener)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from podtier.webhook.core.profile import task_key
from podtier.webhook.headroom import ClusterHeadroom
from tests.webhook.headroom.builders import POOLS, node, pod

GI = 2**30 * 1000
HEAVY = {"cpu": 2000, "memory": 4 * GI, "pods": 1000}
COMPUTE = POOLS["compute"]


def task_pod(name: str, node_name: str, started: str | None, phase: str = "Running") -> Any:
    raw = pod(name, node_name, cpu="2", memory="4Gi", phase=phase)
    raw["metadata"]["labels"] = {"kubernetes_executor": "True", "dag_id": "etl", "task_id": "load"}
    if started is not None:
        raw["status"]["startTime"] = started
    return raw


def tracker() -> ClusterHeadroom:
    headroom = ClusterHeadroom(source="test events", clock=lambda: 0.0)
    headroom.track_running()
    headroom.wall_clock = lambda: 1_800_000_000.0
    headroom.relist("Node", [])
    headroom.relist("Pod", [])
    for raw in (node("c1", "compute", cpu="5", memory="20Gi"), node("w1")):
        headroom.apply("Node", "ADDED", raw)
    return headroom


def test_the_outlook_lists_running_tasks_with_their_start_and_gives_holds_back() -> None:
    headroom = tracker()
    headroom.apply("Pod", "ADDED", task_pod("a", "c1", "2027-01-15T08:00:00Z"))
    headroom.apply("Pod", "ADDED", task_pod("b", "c1", None))  # no start time yet
    headroom.apply("Pod", "ADDED", pod("waits", cpu="2", memory="4Gi", pool="compute"))
    with headroom.transaction(0.0) as view:  # a later pod that waits, as the edge holds it
        assert view.outlook(*COMPUTE) is not None
        view.reserve("c1", HEAVY, "airflow/placed")
    with headroom.transaction(0.0) as view:
        outlook = view.outlook(*COMPUTE)
    assert outlook is not None
    assert outlook.at == 1_800_000_000.0
    assert set(outlook.free) == {"c1"}  # only the pool's nodes
    assert outlook.free["c1"]["cpu"] == 1000  # 5 - 2 - 2: the holds are given back ...
    assert outlook.held == (HEAVY, HEAVY)  # ... and listed, oldest first
    running = {p.started_at: p for p in outlook.running}
    start = dt.datetime(2027, 1, 15, 8, tzinfo=dt.UTC).timestamp()
    assert set(running) == {start, None}
    started = running[start]
    assert started.task == task_key("airflow", "etl", "load")
    assert started.node == "c1" and started.requests["cpu"] == 2000


def test_a_finished_or_deleted_pod_leaves_the_outlook() -> None:
    headroom = tracker()
    headroom.apply("Pod", "ADDED", task_pod("a", "c1", "2027-01-15T08:00:00Z"))
    headroom.apply("Pod", "ADDED", task_pod("b", "c1", "2027-01-15T08:01:00Z"))
    headroom.apply("Pod", "MODIFIED", task_pod("a", "c1", None, phase="Succeeded"))
    headroom.apply("Pod", "DELETED", task_pod("b", "c1", None))
    with headroom.transaction(0.0) as view:
        outlook = view.outlook(*COMPUTE)
    assert outlook is not None and outlook.running == ()
    assert outlook.free["c1"]["cpu"] == 5000


def test_an_unknown_picture_has_no_outlook() -> None:
    headroom = ClusterHeadroom(source="test events")  # never synced
    with headroom.transaction(0.0) as view:
        assert view.outlook(*COMPUTE) is None
