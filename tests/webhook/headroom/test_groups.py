"""The node-group indexes answer exactly as a scan of every node would, whatever happened
before: random streams of node and pod events, reservations and queries (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podtier.webhook.headroom.groups import group_key
from podtier.webhook.headroom.records import node_record
from podtier.webhook.headroom.state import ClusterState
from podtier.webhook.headroom.taints import parse_tolerations, tolerates_all
from tests.webhook.headroom.builders import POOLS, node, pod, requests

NODES = [f"n{i}" for i in range(3)]
PODS = [f"p{i}" for i in range(8)]
CPUS = ["500m", "1", "2", "3"]

node_event = st.builds(
    lambda name, pool, cpu, ready, cordoned: (
        "node",
        node(name, pool=pool, cpu=cpu, ready=ready, unschedulable=cordoned),
    ),
    st.sampled_from(NODES),
    st.sampled_from(["worker", "compute"]),
    st.sampled_from(["2", "4", "8"]),
    st.booleans(),
    st.booleans(),
)
pod_event = st.builds(
    lambda name, where, cpu, phase: ("pod", pod(name, where, cpu=cpu, memory="1Gi", phase=phase)),
    st.sampled_from(PODS),
    st.sampled_from(NODES),
    st.sampled_from(CPUS),
    st.sampled_from(["Running", "Running", "Succeeded"]),
)
pending_event = st.builds(
    lambda name, cpu, pool: ("pod", pod(name, cpu=cpu, phase="Pending", pool=pool)),
    st.sampled_from(PODS),
    st.sampled_from(CPUS),
    st.sampled_from(["worker", "compute"]),
)
delete_pod = st.builds(lambda name: ("delete-pod", name), st.sampled_from(PODS))
delete_node = st.builds(lambda name: ("delete-node", name), st.sampled_from(NODES))
reserve = st.builds(
    lambda name, where, cpu, pool: ("reserve", name, where, cpu, pool),
    st.sampled_from(PODS),
    st.sampled_from(NODES),
    st.sampled_from(CPUS),
    st.sampled_from([None, "worker", "compute"]),  # the group the hold may move in, if any
)
share = st.builds(
    lambda share: ("share", share), st.sampled_from([None, (0, 1), (0, 2), (1, 2), (2, 3)])
)
expire = st.just(("expire",))
query = st.builds(
    lambda pool, cpu: ("query", pool, cpu),
    st.sampled_from(["worker", "compute"]),
    st.sampled_from(CPUS),
)

operations = st.lists(
    st.one_of(
        node_event,
        pod_event,
        pending_event,
        delete_pod,
        delete_node,
        reserve,
        expire,
        query,
        share,
    ),
    max_size=60,
)


def brute_force(state: ClusterState, pool: str, wanted: dict[str, int]) -> set[str]:
    selector, tolerations = POOLS[pool]
    parsed = parse_tolerations(tolerations)
    return {
        name
        for name, record in state.nodes.items()
        if record.schedulable
        and all(record.labels.get(k) == v for k, v in selector.items())
        and tolerates_all(parsed, record.taints)
        and state.fits(name, wanted)
    }


@settings(max_examples=600, deadline=None)
@given(operations)
def test_find_node_agrees_with_a_full_scan(ops: list[tuple[Any, ...]]) -> None:
    state = ClusterState()
    clock = 0.0
    for op in ops:
        clock += 1
        if op[0] == "node":
            state.apply("Node", "MODIFIED", op[1])
        elif op[0] == "pod":
            state.apply("Pod", "MODIFIED", op[1])
        elif op[0] == "delete-pod":
            state.apply("Pod", "DELETED", {"metadata": {"namespace": "airflow", "name": op[1]}})
        elif op[0] == "delete-node":
            state.apply("Node", "DELETED", {"metadata": {"name": op[1]}})
        elif op[0] == "reserve":
            where = group_key(*POOLS[op[4]]) if op[4] else None
            state.reserve(op[2], requests(cpu=op[3]), f"airflow/{op[1]}", clock + 5, where)
        elif op[0] == "share":
            state.set_share(op[1])
        elif op[0] == "expire":
            state.expire(clock)
        else:
            wanted = requests(cpu=op[2])
            chosen = state.find_node(*POOLS[op[1]], wanted)
            fitting = brute_force(state, op[1], wanted)
            assert (chosen is None) == (not fitting)
            assert chosen is None or chosen in fitting
    # usage is exactly the sum of what pods and reservations hold
    expected: dict[str, dict[str, int]] = {}
    for key, where in state.pods.items():
        if where:
            for r, v in state.pod_requests[key].items():
                expected.setdefault(where, {}).setdefault(r, 0)
                expected[where][r] += v
    for reservation in [*state.reservations.values(), *state.shadows.values()]:
        for r, v in reservation.requests.items():
            expected.setdefault(reservation.node, {}).setdefault(r, 0)
            expected[reservation.node][r] += v
    actual = {n: {r: v for r, v in used.items() if v} for n, used in state.used.items()}
    assert actual == {
        n: {r: v for r, v in used.items() if v}
        for n, used in expected.items()
        if any(used.values())
    }

    # the index of holds that may move agrees with where each is held
    indexed = {(node, key) for node, keys in state.holds_on.items() for key in keys}
    held = {(state._held_node(key), key) for key in state.holds}  # noqa: SLF001
    assert indexed == held
    waiting = {key for keys in state.overcommitted.values() for key in keys}
    assert waiting <= set(state.holds)


def test_records_keep_only_blocking_taints() -> None:
    raw = node(
        "w1",
        taints=[
            {"key": "a", "value": "", "effect": "PreferNoSchedule"},
            {"key": "b", "value": "", "effect": "NoExecute"},
        ],
    )
    assert [t.key for t in node_record(raw).taints] == ["b"]


def test_a_node_that_took_pods_since_the_last_query_is_still_found() -> None:
    state = ClusterState()
    state.apply("Node", "ADDED", node("big", cpu="8"))
    state.apply("Node", "ADDED", node("small", cpu="2"))
    assert state.find_node(*POOLS["worker"], requests(cpu="1")) == "big"
    state.apply("Pod", "ADDED", pod("a", "big", cpu="1"))  # big now has 7 free, not 8
    assert state.find_node(*POOLS["worker"], requests(cpu="7")) == "big"
    assert state.find_node(*POOLS["worker"], requests(cpu="7500m")) is None
    state.apply("Pod", "DELETED", pod("a", "big"))
    assert state.find_node(*POOLS["worker"], requests(cpu="7500m")) == "big"


def test_the_node_found_last_is_asked_again_only_while_it_has_room() -> None:
    state = ClusterState()
    state.apply("Node", "ADDED", node("big", cpu="4"))
    state.apply("Node", "ADDED", node("small", cpu="2"))
    worker = POOLS["worker"]
    assert state.find_node(*worker, requests(cpu="1")) == "big"
    state.reserve("big", requests(cpu="3"), "airflow/a", 60.0)
    # big has 1 cpu left: a pod of 2 goes to small, one of 1 may still go to big
    assert state.find_node(*worker, requests(cpu="2")) == "small"
    state.reserve("small", requests(cpu="1500m"), "airflow/b", 60.0)
    assert state.find_node(*worker, requests(cpu="1")) == "big"
    # cordoned: out of the pool, though it was the last node found and has the room
    state.apply("Node", "MODIFIED", node("big", cpu="4", unschedulable=True))
    assert state.find_node(*worker, requests(cpu="500m")) == "small"
    assert state.find_node(*worker, requests(cpu="1")) is None
