"""Units and prices shared by the report's figures: cᵢ, a pod's price per hour."""

from __future__ import annotations

from podtier.webhook.core.policy import Cost, Policy

GIB = 1024**3
HOUR = 3600.0


def price_per_hour(cpu: int, memory: int, gpu: int, cost: Cost | None) -> float | None:
    """cᵢ for requests of `cpu` millicores, `memory` bytes and `gpu` GPUs."""
    if cost is None:
        return None
    return cpu / 1000 * cost.cpu_hour + memory / GIB * cost.memory_gib_hour + gpu * cost.gpu_hour


def pool_cost(policy: Policy, pool: str) -> Cost | None:
    found = policy.pools.get(pool)
    return found.cost if found is not None else None


def named_first(name: str) -> tuple[bool, str]:
    """Sort key: named pools and tiers first, then "" (pods of no pool or tier)."""
    return name == "", name
