"""The scaling signal for a worker pool: how many nodes it wants for its pending Airflow pods.

    N(t) = min(max(ceil(P(t) / k), N_min), N_max)

P(t) is the number of Airflow pods waiting to be bound for the pool (phase Pending, no node
yet); k (`podsPerNode`), N_min (`minNodes`) and N_max (`maxNodes`) come from the pool's
`scaling` in the policy. Pure: the census supplies P, the policy the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

from podtier.webhook.policy import Policy, Scaling


def desired_nodes(pending: int, scaling: Scaling) -> int:
    wanted = -(-pending // scaling.pods_per_node)  # ceil without floats
    return min(max(wanted, scaling.min_nodes), scaling.max_nodes)


def desired_nodes_by_pool(policy: Policy, pending: Mapping[str, int]) -> dict[str, int]:
    """N for every pool of the policy that has `scaling`, in policy order."""
    return {
        name: desired_nodes(pending.get(name, 0), pool.scaling)
        for name, pool in policy.pools.items()
        if pool.scaling is not None
    }
