"""The scheduler need not bind a pod to the node podtier held it on. Whatever node of the pool it
picks, podtier's picture stays a packing the scheduler can follow: holds move off a node the
scheduler filled, waiting pods that fit nowhere keep their pool full, and capacity coming back
goes to them first."""

from __future__ import annotations

import itertools

import pytest

from podtier.webhook.headroom import ClusterHeadroom
from tests.webhook.headroom.builders import POOLS, node, pod, requests
from tests.webhook.headroom.feeds import from_events

HEAVY = requests(cpu="2", memory="4Gi")
COMPUTE = POOLS["compute"]


def compute_nodes(count: int = 2) -> list[dict[str, object]]:
    """Nodes with room for two heavy pods each (5 cpu, 20Gi)."""
    return [node(f"c{i}", "compute", cpu="5", memory="20Gi") for i in range(1, count + 1)]


def place(headroom: ClusterHeadroom, key: str, now: float = 0.0) -> str | None:
    with headroom.transaction(now) as view:
        chosen = view.find_node(*COMPUTE, HEAVY)
        if chosen is not None:
            view.reserve(chosen, HEAVY, key)
        return chosen


def heavy(name: str, node_name: str = "") -> dict[str, object]:
    phase = "Running" if node_name else "Pending"
    return pod(name, node_name, cpu="2", memory="4Gi", phase=phase, pool="compute")


def assert_consistent(headroom: ClusterHeadroom) -> None:
    """No node is over its allocatable unless a hold on it is known to wait."""
    state = headroom.state
    for name in state.nodes:
        if state.free(name, "cpu") < 0:
            held = state.holds_on.get(name, {})
            waiting = {k for keys in state.overcommitted.values() for k in keys}
            assert set(held) & waiting, f"{name} is over its cpu with no waiting hold"


def test_a_pod_bound_to_another_node_than_held_leaves_no_phantom_room() -> None:
    """The issue's leak: four heavy pods held two per node; the scheduler binds one held on
    c1 to c2. Before, c1 then showed a free slot the cluster did not have."""
    headroom = from_events(compute_nodes())
    held = {f"p{i}": place(headroom, f"airflow/p{i}") for i in range(4)}
    assert sorted(held.values()) == ["c1", "c1", "c2", "c2"]
    assert place(headroom, "airflow/fifth") is None
    for name in held:  # the watch shows them, Pending
        headroom.apply("Pod", "ADDED", heavy(name))
    mover = next(name for name, where in held.items() if where == "c1")
    headroom.apply("Pod", "MODIFIED", heavy(mover, "c2"))  # the scheduler's choice
    assert place(headroom, "airflow/fifth") is None
    assert_consistent(headroom)
    assert headroom.state.free("c1", "cpu") == 1000 and headroom.state.free("c2", "cpu") == 1000


def test_reservations_not_yet_seen_move_too() -> None:
    headroom = from_events(compute_nodes())
    held = {f"p{i}": place(headroom, f"airflow/p{i}") for i in range(4)}
    mover = next(name for name, where in held.items() if where == "c1")
    # Only the mover is seen, and already bound to c2: the other three are still reservations.
    headroom.apply("Pod", "ADDED", heavy(mover, "c2"))
    assert place(headroom, "airflow/fifth") is None
    assert len(headroom.state.reservations) == 3
    assert_consistent(headroom)


@pytest.mark.parametrize(
    "binds",
    [
        pytest.param(order, id="-".join(order))
        for order in itertools.product(["c1", "c2"], repeat=4)
        if order.count("c1") == 2
    ],
)
def test_whichever_nodes_the_scheduler_picks_the_pool_takes_exactly_its_room(
    binds: tuple[str, ...],
) -> None:
    headroom = from_events(compute_nodes())
    names = [f"p{i}" for i in range(4)]
    for name in names:
        assert place(headroom, f"airflow/{name}") is not None
        headroom.apply("Pod", "ADDED", heavy(name))
    for name, where in zip(names, binds, strict=True):
        headroom.apply("Pod", "MODIFIED", heavy(name, where))
        assert place(headroom, "airflow/extra") is None
        assert_consistent(headroom)
    assert headroom.state.holds == {} and headroom.state.overcommitted == {}


def test_waiting_pods_that_fit_nowhere_keep_the_pool_full() -> None:
    """Five heavy pods pinned by other replicas where four fit: the fifth waits, and a slot
    freed later is its, not a new pod's."""
    headroom = from_events(compute_nodes())
    for i in range(5):
        headroom.apply("Pod", "ADDED", heavy(f"w{i}"))
    assert sum(len(k) for k in headroom.state.overcommitted.values()) == 1
    assert place(headroom, "airflow/new") is None
    for i in range(4):  # bound where podtier held them
        headroom.apply("Pod", "MODIFIED", heavy(f"w{i}", headroom.state.pods[f"airflow/w{i}"]))
    headroom.apply("Pod", "MODIFIED", pod("w0", "c1", phase="Succeeded", pool="compute"))
    assert headroom.state.overcommitted == {}  # the waiting pod took the freed slot
    assert place(headroom, "airflow/new") is None
    headroom.apply("Pod", "DELETED", heavy("w1"))
    assert place(headroom, "airflow/new") is not None


def test_holds_leave_a_cordoned_node() -> None:
    headroom = from_events(compute_nodes(3))
    chosen = place(headroom, "airflow/a")
    assert chosen is not None
    headroom.apply("Pod", "ADDED", heavy("a"))
    cordoned = node(chosen, "compute", cpu="5", memory="20Gi", unschedulable=True)
    headroom.apply("Node", "MODIFIED", cordoned)
    moved_to = headroom.state.pods["airflow/a"]
    assert moved_to not in ("", chosen)
    assert headroom.state.free(moved_to, "cpu") == 3000


def test_a_deleted_node_sends_its_holds_to_a_node_with_room() -> None:
    headroom = from_events(compute_nodes(2))
    for name in ("a", "b"):
        place(headroom, f"airflow/{name}")
        headroom.apply("Pod", "ADDED", heavy(name))
    gone = headroom.state.pods["airflow/a"]
    headroom.apply("Node", "DELETED", node(gone, "compute", cpu="5", memory="20Gi"))
    remaining = next(n for n in headroom.state.nodes)
    assert headroom.state.pods["airflow/a"] == remaining == headroom.state.pods["airflow/b"]
    assert place(headroom, "airflow/c") is None
