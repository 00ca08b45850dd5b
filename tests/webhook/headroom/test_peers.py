"""Several replicas: each promises only its share of each pool's nodes, learnt from the peers'
Leases, and promises nothing while it cannot be sure of that share."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client

from podtier.webhook.headroom import ClusterHeadroom
from podtier.webhook.headroom.peers import Membership, PeerLeases, share_of
from tests.conftest import FakeClock
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import POOLS, node, pod, requests
from tests.webhook.headroom.feeds import from_events

HEAVY = requests(cpu="2", memory="4Gi")


@pytest.mark.parametrize(
    ("me", "live", "share"),
    [
        pytest.param("b", ["a", "b", "c"], (1, 3), id="middle-of-three"),
        pytest.param("a", [], (0, 1), id="alone-before-the-first-list"),
        pytest.param("z", ["a", "b"], (2, 3), id="not-yet-listed-counts-itself"),
    ],
)
def test_share_of(me: str, live: list[str], share: tuple[int, int]) -> None:
    assert share_of(me, live) == share


def test_a_peer_counts_while_its_lease_keeps_changing() -> None:
    membership = Membership("a", duration=15)
    assert membership.observe({"a": 1, "b": 1}, now=0) == ["a", "b"]
    assert membership.observe({"a": 2, "b": 1}, now=10) == ["a", "b"]
    assert membership.observe({"a": 3, "b": 1}, now=15.5) == ["a"]  # b stopped renewing
    assert membership.observe({"a": 4, "b": 2}, now=16) == ["a", "b"]  # and came back
    assert membership.observe({"a": 5}, now=17) == ["a"]  # its Lease was deleted


def test_a_replica_promises_only_after_settling_and_stops_when_cut_off() -> None:
    membership = Membership("a", duration=15)
    assert "cannot renew" in membership.problem(0, settle=6)
    membership.renewed(0)
    membership.observe({"a": 1}, now=0)
    assert "still agreeing" in membership.problem(3, settle=6)
    assert membership.problem(6, settle=6) == ""
    assert "cannot renew" in membership.problem(10, settle=6)  # 2/3 of 15 s without renewal


def replica(share: tuple[int, int]) -> ClusterHeadroom:
    """Four compute nodes (room for two heavy pods each), on a clock that stays at 0."""
    nodes = [node(f"c{i}", "compute", cpu="5", memory="20Gi") for i in range(4)]
    headroom = from_events(nodes, clock=FakeClock())
    headroom.use_peers()
    headroom.set_peers(share, "")
    return headroom


def place(headroom: ClusterHeadroom, key: str) -> str | None:
    with headroom.transaction(0) as view:
        chosen = view.find_node(*POOLS["compute"], HEAVY)
        if chosen is not None:
            view.reserve(chosen, HEAVY, key)
        return chosen


@pytest.mark.parametrize("count", [2, 3], ids=["two-replicas", "three-replicas"])
def test_replicas_that_cannot_see_each_other_never_promise_the_same_room(count: int) -> None:
    """The worst case: a burst in which no replica's watch shows another's pods yet."""
    replicas = [replica((i, count)) for i in range(count)]
    placed: list[list[str | None]] = [[] for _ in replicas]
    barrier = threading.Barrier(count)

    def burst(i: int) -> None:
        barrier.wait()
        placed[i] = [place(replicas[i], f"airflow/r{i}-p{n}") for n in range(12)]

    threads = [threading.Thread(target=burst, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    nodes = [n for row in placed for n in row if n is not None]
    assert len(nodes) <= 8  # four nodes with room for two heavy pods each
    assert all(nodes.count(name) <= 2 for name in set(nodes))
    assert len(nodes) >= 8 - 2 * (count - 1)  # shares are whole nodes; none is left unowned


def test_a_replica_without_agreement_says_why_and_is_not_ready() -> None:
    headroom = from_events([node("c0", "compute", cpu="5", memory="20Gi")])
    assert headroom.ready()
    headroom.use_peers()
    assert not headroom.ready()
    with headroom.transaction(0) as view:
        assert not view.status.known
        assert "has not yet met its peers" in view.status.reason
        assert view.find_node(*POOLS["compute"], HEAVY) is None
    headroom.set_peers((0, 1), "")
    assert headroom.ready()
    headroom.set_peers((0, 1), "this replica cannot renew its peer Lease")
    assert headroom.ready()  # readiness waits only for the first agreement
    assert "cannot renew" in headroom.status(0).reason


def test_peer_leases_through_the_kubernetes_client() -> None:
    api = KubeAPI().start()
    try:
        config = client.Configuration(host=api.url)
        clock = FakeClock(1000.0)
        peers = [
            PeerLeases(
                client.ApiClient(config),
                group="podtier",
                namespace="podtier",
                identity=name,
                wall_clock=clock,
            )
            for name in ("b", "a")
        ]
        for peer in peers:
            peer.renew()
        listed = peers[0].list()
        assert sorted(listed) == ["a", "b"]
        clock.now += 5
        peers[0].renew()
        assert peers[0].list()["b"] != listed["b"] and peers[0].list()["a"] == listed["a"]
        peers[1].release()
        assert sorted(peers[0].list()) == ["b"]
    finally:
        api.stop()


def test_room_a_pod_leaves_for_another_replicas_node_stays_held_for_the_peer_lag() -> None:
    """Replica 0 of 2 owns c0 and c2 of c0..c3. Its pod held on c0 binds to c1 (replica 1's):
    replica 1 may have promised c1's room to a pod replica 0 cannot see yet, which will then
    need c0's. So c0 keeps the room for PEER_LAG seconds."""
    from podtier.webhook.headroom.state import PEER_LAG

    headroom = replica((0, 2))
    assert place(headroom, "airflow/p") == "c0"
    headroom.apply("Pod", "ADDED", pod("p", "c1", cpu="2", memory="4Gi", pool="compute"))
    assert headroom.state.free("c0", "cpu") == 3000  # the shadow
    promised = [place(headroom, f"airflow/q{n}") for n in range(4)]
    assert sorted(map(str, promised)) == ["None", "c0", "c2", "c2"]  # 3 of the share's 4 slots
    with headroom.transaction(PEER_LAG + 1):
        assert headroom.state.free("c0", "cpu") == 3000  # lapsed: only q's reservation is left
    headroom.apply("Pod", "DELETED", pod("p", "c1"))
    assert headroom.state.shadows == {}


def test_every_replica_holds_a_waiting_pod_on_the_node_its_replica_counted() -> None:
    """Replica 1 of 2 owns c1 and c3. Replica 0's four pods, counted on c0 and c2 and not bound
    yet, are held there by replica 1 too: its own share keeps its room for four more."""
    headroom = replica((1, 2))
    for n, counted in enumerate(["c0", "c0", "c2", "c2"]):
        waiting = pod(f"p{n}", cpu="2", memory="4Gi", pool="compute", counted_on=counted)
        headroom.apply("Pod", "ADDED", waiting)
    assert [headroom.state.free(f"c{i}", "cpu") for i in range(4)] == [1000, 5000, 1000, 5000]
    promised = [place(headroom, f"airflow/q{n}") for n in range(5)]
    assert sorted(map(str, promised)) == ["None", "c1", "c1", "c3", "c3"]


def test_a_waiting_pod_counted_on_a_node_without_its_room_is_held_where_there_is_room() -> None:
    headroom = replica((0, 1))
    for n in range(2):
        headroom.apply("Pod", "ADDED", pod(f"on-c0-{n}", "c0", cpu="2", memory="4Gi"))
    late = pod("late", cpu="2", memory="4Gi", pool="compute", counted_on="c0")
    headroom.apply("Pod", "ADDED", late)  # c0's room went to pods bound there meanwhile
    assert headroom.state.free("c0", "cpu") == 1000
    assert sorted(headroom.state.free(f"c{i}", "cpu") for i in (1, 2, 3)) == [3000, 5000, 5000]
    forged = pod("forged", cpu="2", memory="4Gi", pool="compute", counted_on="not-a-node")
    headroom.apply("Pod", "ADDED", forged)
    assert sum(headroom.state.free(f"c{i}", "cpu") for i in range(4)) == 20000 - 4 * 2000


def two_pools(share: tuple[int, int], compute_bound: int, worker_bound: int) -> ClusterHeadroom:
    """Compute c0..c3 (two heavy pods each) and worker w0..w3 (four each), with that many
    heavy pods bound, node by node in name order."""
    nodes = [node(f"c{i}", "compute", cpu="5", memory="20Gi") for i in range(4)]
    nodes += [node(f"w{i}", "worker", cpu="8", memory="32Gi") for i in range(4)]
    bound = [f"c{n // 2}" for n in range(compute_bound)] + [
        f"w{n // 4}" for n in range(worker_bound)
    ]
    pods = [pod(f"b{n}", at, cpu="2", memory="4Gi") for n, at in enumerate(bound)]
    headroom = from_events(nodes + pods, clock=FakeClock())
    headroom.use_peers()
    headroom.set_peers(share, "")
    return headroom


@pytest.mark.parametrize(
    ("compute_bound", "worker_bound", "pool", "room"),
    [
        (7, 8, "worker", 4),  # c3 has room for one, w3 for four: worker has the most
        (4, 15, "compute", 2),  # c3 has room for two, w3 for one
        (6, 14, "compute", 2),  # a tie (c3, w3: two each): the first pool in placement order
    ],
)
def test_a_replica_whose_share_is_full_borrows_from_the_pool_with_the_most_room(
    compute_bound: int, worker_bound: int, pool: str, room: int
) -> None:
    """Replica 0 of 2 owns c0, c2, w0 and w2; its share is full in both pools (bound pods and
    its own reservations). Another replica may be promising the rest at this moment, and the
    scheduler places by pool: the pool with the most room is the one where both fit."""
    from podtier.policies import DEFAULT_POLICY
    from podtier.webhook.core.placement import place as place_pod
    from podtier.webhook.policy.load import load_policy

    policy = load_policy([DEFAULT_POLICY])
    headroom = two_pools((0, 2), compute_bound, worker_bound)
    with headroom.transaction(0) as view:
        for name in ("c0", "c2", "w0", "w2"):  # the share, filled by this replica's placements
            while headroom.state.fits(name, HEAVY):
                view.reserve(name, HEAVY, f"airflow/r-{name}-{headroom.state.free(name, 'cpu')}")
        pools = [policy.pools["compute"], policy.pools["worker"]]
        placement = place_pod(pools, HEAVY, {}, [], view)
    assert placement.fits and placement.pool.name == pool
    assert placement.node not in ("c0", "c2", "w0", "w2")
    assert f"pool {pool} has the most in the cluster (room for {room}" in placement.why
    assert "no compute, worker node of this replica's share has room" in placement.why


def test_one_replica_never_borrows() -> None:
    headroom = two_pools((0, 1), 8, 16)
    with headroom.transaction(0) as view:
        assert view.find_node(*POOLS["worker"], HEAVY) is None
        assert view.find_elsewhere(*POOLS["worker"], HEAVY) is None


def test_borrowing_counts_the_room_under_this_replicas_own_shadows() -> None:
    """Replica 0 of 2 owns c0 and c2. Its pod p, counted on c0, binds to c1: c0's room stays
    held as a shadow, so replica 0 does not promise it. When its share is full and the rest of
    the pool too, that room is still the likeliest free room in the pool (most shadows are never
    claimed): a borrowed placement uses it rather than pinning a full pool."""
    from podtier.policies import DEFAULT_POLICY
    from podtier.webhook.core.placement import place as place_pod
    from podtier.webhook.policy.load import load_policy

    pools = [load_policy([DEFAULT_POLICY]).pools["compute"]]
    headroom = replica((0, 2))
    for n, at in enumerate(["c1", "c3", "c3"]):
        headroom.apply("Pod", "ADDED", pod(f"b{n}", at, cpu="2", memory="4Gi"))
    assert place(headroom, "airflow/p") == "c0"
    headroom.apply("Pod", "ADDED", pod("p", "c1", cpu="2", memory="4Gi", pool="compute"))
    promised = [place(headroom, f"airflow/q{n}") for n in range(4)]
    assert sorted(map(str, promised)) == ["None", "c0", "c2", "c2"]
    with headroom.transaction(0) as view:
        placement = place_pod(pools, HEAVY, {}, [], view)
        view.reserve(placement.node, HEAVY, "airflow/r")
    assert placement.fits and placement.node == "c0"
    assert "room for 1 such pods), node c0 has" in placement.why
    with headroom.transaction(0) as view:  # the shadow's room is taken now
        assert place_pod(pools, HEAVY, {}, [], view).node is None
