"""The scaling signal N = min(max(ceil(P / k), N_min), N_max), per pool, on a table of edges."""

from __future__ import annotations

import math

import pytest

from podtier.webhook.insight.scaling import desired_nodes, desired_nodes_by_pool
from podtier.webhook.policy import Scaling
from tests.webhook.insight.pods import scaled_policy


@pytest.mark.parametrize(
    ("pending", "k", "n_min", "n_max", "expected"),
    [
        pytest.param(0, 4, 0, 10, 0, id="P=0-no-floor"),
        pytest.param(0, 4, 2, 10, 2, id="P=0-floor-N_min"),
        pytest.param(1, 1, 0, 10, 1, id="k=1-one-pod"),
        pytest.param(7, 1, 0, 10, 7, id="k=1-a-node-per-pod"),
        pytest.param(8, 4, 0, 10, 2, id="P-exactly-divisible"),
        pytest.param(9, 4, 0, 10, 3, id="P-one-over-rounds-up"),
        pytest.param(3, 4, 0, 10, 1, id="P-below-k-one-node"),
        pytest.param(5, 4, 3, 10, 3, id="N_min-above-ceil"),
        pytest.param(100, 4, 0, 10, 10, id="capped-at-N_max"),
        pytest.param(40, 4, 0, 10, 10, id="ceil-equals-N_max"),
        pytest.param(41, 4, 0, 10, 10, id="one-over-N_max-still-capped"),
        pytest.param(5, 2, 4, 4, 4, id="N_min-equals-N_max"),
        pytest.param(50, 1, 0, 0, 0, id="N_max-zero-pool-off"),
    ],
)
def test_desired_nodes_follows_the_formula(pending, k, n_min, n_max, expected) -> None:
    assert desired_nodes(pending, Scaling(k, n_min, n_max)) == expected
    assert expected == min(max(math.ceil(pending / k), n_min), n_max)


def test_only_pools_with_scaling_get_a_signal_and_pending_elsewhere_does_not_count() -> None:
    policy = scaled_policy(
        {
            "worker": {"podsPerNode": 4, "minNodes": 1, "maxNodes": 10},
            "gpu": {"podsPerNode": 1, "maxNodes": 2},
        }
    )
    pending = {"worker": 9, "compute": 50, "gpu": 5, "": 3}
    assert desired_nodes_by_pool(policy, pending) == {"worker": 3, "gpu": 2}
    assert desired_nodes_by_pool(policy, {}) == {"worker": 1, "gpu": 0}
