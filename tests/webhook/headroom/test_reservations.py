"""No overbooking: reservations hold what podtier placed until the watch shows the pod (or a
TTL passes), and pending pods that carry `podtier.io/pool` count against their pool."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from podtier.webhook.headroom import ClusterHeadroom
from tests.webhook.headroom.builders import POOLS, node, pod, requests
from tests.webhook.headroom.feeds import from_events

HEAVY = requests(cpu="2", memory="4Gi")
WORKER = POOLS["worker"]


def place(
    headroom: ClusterHeadroom, now: float, key: str, wanted: dict[str, int] = HEAVY
) -> str | None:
    """What the HTTP edge does for one admission: find a node and reserve it, atomically."""
    with headroom.transaction(now) as view:
        chosen = view.find_node(*WORKER, wanted)
        if chosen is not None:
            view.reserve(chosen, wanted, key)
        return chosen


def free_cpu(headroom: ClusterHeadroom, name: str) -> int:
    return headroom.state.free(name, "cpu")


def test_reservation_holds_capacity_until_the_pod_appears() -> None:
    headroom = from_events([node("w1")])  # 4 cpu: room for two heavy pods
    assert place(headroom, 0, "airflow/a") == "w1"
    assert place(headroom, 0, "airflow/b") == "w1"
    assert place(headroom, 0, "airflow/c") is None
    headroom.apply("Pod", "ADDED", pod("a", "w1", cpu="2", memory="4Gi"))
    headroom.apply("Pod", "ADDED", pod("b", "w1", cpu="2", memory="4Gi"))
    assert headroom.state.reservations == {}  # seen: the pods' own requests count instead
    assert free_cpu(headroom, "w1") == 0
    headroom.apply("Pod", "DELETED", pod("a", "w1"))
    assert place(headroom, 0, "airflow/c") == "w1"


def test_reservation_expires_after_its_ttl() -> None:
    headroom = from_events([node("w1", cpu="2")], reservation_ttl=30)
    assert place(headroom, 100.0, "airflow/a") == "w1"
    assert place(headroom, 129.0, "airflow/b") is None  # still held
    assert place(headroom, 130.5, "airflow/b") == "w1"  # a's reservation lapsed


def test_a_pod_seen_with_other_requests_replaces_its_reservation() -> None:
    headroom = from_events([node("w1")])
    place(headroom, 0, "airflow/a")  # reserved 2 cpu
    headroom.apply("Pod", "ADDED", pod("a", "w1", cpu="1"))  # the pod as created asks for 1
    assert free_cpu(headroom, "w1") == 3000


def test_pending_pod_takes_over_its_reservation_node_and_moves_when_bound() -> None:
    headroom = from_events([node("w1"), node("w2")])
    chosen = place(headroom, 0, "airflow/a")
    other = "w2" if chosen == "w1" else "w1"
    headroom.apply("Pod", "ADDED", pod("a", cpu="2", memory="4Gi", phase="Pending", pool="worker"))
    assert headroom.state.reservations == {}
    assert free_cpu(headroom, chosen) == 2000 and free_cpu(headroom, other) == 4000
    headroom.apply("Pod", "MODIFIED", pod("a", other, cpu="2", memory="4Gi", pool="worker"))
    assert free_cpu(headroom, chosen) == 4000 and free_cpu(headroom, other) == 2000


def test_pending_pods_placed_by_other_replicas_fill_the_pool() -> None:
    headroom = from_events([node("w1"), node("w2")])
    for i in range(4):  # four heavy pods admitted elsewhere, not yet scheduled
        headroom.apply(
            "Pod", "ADDED", pod(f"p{i}", cpu="2", memory="4Gi", phase="Pending", pool="worker")
        )
    assert place(headroom, 0, "airflow/mine") is None
    headroom.apply("Pod", "DELETED", pod("p0"))
    assert place(headroom, 0, "airflow/mine") is not None


def test_a_finished_pod_releases_its_node() -> None:
    headroom = from_events([node("w1", cpu="2"), pod("a", "w1", cpu="2")])
    assert place(headroom, 0, "airflow/b") is None
    headroom.apply("Pod", "MODIFIED", pod("a", "w1", cpu="2", phase="Succeeded"))
    assert place(headroom, 0, "airflow/b") == "w1"


def test_a_pod_already_seen_gets_no_second_reservation() -> None:
    headroom = from_events([node("w1"), pod("a", "w1", cpu="2")])
    assert place(headroom, 0, "airflow/a") == "w1"  # e.g. a reinvocation for an existing pod
    assert free_cpu(headroom, "w1") == 2000


@pytest.mark.parametrize(
    ("nodes", "roomy"),
    [
        pytest.param([node("w1", cpu="20", memory="64Gi")], 10, id="one-node-with-room-for-ten"),
        pytest.param(
            [node(f"w{i}", cpu="4") for i in range(5)], 10, id="five-nodes-with-room-for-two"
        ),
    ],
)
def test_concurrent_admissions_never_share_the_last_slot(
    nodes: list[dict[str, Any]], roomy: int
) -> None:
    headroom = from_events(nodes)
    barrier = threading.Barrier(200)
    placed: list[str | None] = [None] * 200

    def admit(i: int) -> None:
        barrier.wait()
        placed[i] = place(headroom, 0, f"airflow/p{i}")

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(p is not None for p in placed) == roomy
    assert all(headroom.state.free(n["metadata"]["name"], "cpu") >= 0 for n in nodes)
