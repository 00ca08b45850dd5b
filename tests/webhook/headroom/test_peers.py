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


def test_a_replica_whose_share_is_full_borrows_another_share_as_a_last_resort() -> None:
    from podtier.policies import DEFAULT_POLICY
    from podtier.webhook.core.placement import place as place_pod
    from podtier.webhook.policy.load import load_policy

    policy = load_policy([DEFAULT_POLICY])
    headroom = replica((0, 2))  # owns c0 and c2: room for four heavy pods
    for n in range(4):
        assert place(headroom, f"airflow/p{n}") in ("c0", "c2")
    pools = [policy.pools["compute"]]
    with headroom.transaction(0) as view:
        placement = place_pod(pools, HEAVY, {}, [], view)
    assert placement.fits and placement.node in ("c1", "c3")
    assert "no compute node of this replica's share has room" in placement.why
