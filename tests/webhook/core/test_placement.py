from podtier.webhook.core.placement import place, pod_node_selector, pod_tolerations
from tests.webhook.core.fakes import POLICY, UNKNOWN, FakeCapacity

HEAVY_POOLS = [POLICY.pools["compute"], POLICY.pools["worker"]]
REQUESTS = {"cpu": 2000, "pods": 1000}


def test_first_pool_that_fits_wins():
    capacity = FakeCapacity({"compute-optimized": "c-1", "worker": "w-1"})
    placement = place(HEAVY_POOLS, REQUESTS, {}, [], capacity)
    assert (placement.pool.name, placement.node, placement.fits) == ("compute", "c-1", True)
    assert placement.why == "node c-1 has room"


def test_spills_to_later_pool_and_says_so():
    capacity = FakeCapacity({"compute-optimized": None, "worker": "w-7"})
    placement = place(HEAVY_POOLS, REQUESTS, {}, [], capacity)
    assert (placement.pool.name, placement.node) == ("worker", "w-7")
    assert placement.why == "no compute node has room, node w-7 has"


def test_nothing_fits_keeps_first_pool():
    placement = place(HEAVY_POOLS, REQUESTS, {}, [], FakeCapacity({}))
    assert (placement.pool.name, placement.node, placement.fits) == ("compute", None, False)
    assert placement.why == "no node in compute, worker has cpu 2 free"


def test_unknown_headroom_uses_first_pool_and_asks_nothing():
    placement = place(HEAVY_POOLS, REQUESTS, {}, [], UNKNOWN)
    assert placement.pool.name == "compute"
    assert "headroom unknown: disabled by --cluster none" in placement.why
    assert UNKNOWN.asked == []


def test_fit_is_asked_with_the_pools_selector_and_tolerations_added():
    capacity = FakeCapacity({"compute-optimized": "c-1"})
    mine = {"key": "team", "operator": "Equal", "value": "data", "effect": "NoSchedule"}
    place(HEAVY_POOLS, REQUESTS, {"zone": "a", "node-type": "worker"}, [mine], capacity)
    selector, tolerations, requests = capacity.asked[0]
    assert selector == {"zone": "a", "node-type": "compute-optimized"}
    assert mine in tolerations
    assert {
        "key": "workload",
        "operator": "Equal",
        "value": "heavy",
        "effect": "NoSchedule",
    } in tolerations
    assert requests == REQUESTS


def test_tolerations_never_dropped_or_duplicated():
    pool = POLICY.pools["worker"]
    existing = [dict(pool.tolerations[0], tolerationSeconds=None)]
    existing[0].pop("tolerationSeconds")
    merged, added = pod_tolerations(existing, pool)
    assert merged == existing and added == []
    assert pod_node_selector({"node-type": "gpu", "zone": "b"}, pool) == {
        "node-type": "worker",
        "zone": "b",
    }
