"""Findings against a pod's limits. Pure: a list of violations, each naming the container, the
resource, the value and the limit. `enforce` mode denies on them, `audit` mode warns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from podtier.webhook.core.pod import MAIN_CONTAINER, ContainerView, PodView
from podtier.webhook.core.policy import Policy, Quantity, Tier
from podtier.webhook.core.quantity import format_milli


@dataclass(frozen=True)
class Violation:
    container: str
    resource: str
    value: int
    limit: int
    message: str


def find_violations(
    pod: PodView, policy: Policy, tier: Tier, escalated_memory: int | None = None
) -> list[Violation]:
    """`escalated_memory`: the memory limit (milli-units) podtier raised the pod to after an
    OOM kill, which the base container may have above its tier's limit (not above the
    ceiling)."""
    found: list[Violation] = []
    limits = dict(tier.limits)
    memory = limits.get("memory")
    if escalated_memory is not None and memory is not None and escalated_memory > memory.milli:
        limits["memory"] = Quantity(format_milli(escalated_memory, "memory"), escalated_memory)
    for container in (*pod.init_containers, *pod.containers):
        found += _limit_below_request(container)
        if container.name == MAIN_CONTAINER and not container.init:
            what = f"tier {tier.name}'s limit"
            found += _above(container, limits, what)
        found += _above(container, policy.ceilings, "the policy ceiling")
    return found


def _limit_below_request(container: ContainerView) -> list[Violation]:
    out = []
    for resource, limit in container.limits.items():
        request = container.requests.get(resource)
        if request is not None and limit < request:
            out.append(
                Violation(
                    container.name,
                    resource,
                    limit,
                    request,
                    f"container {container.name}: {resource} limit {_q(limit, resource)} is below "
                    f"its request {_q(request, resource)}",
                )
            )
    return out


def _above(container: ContainerView, caps: Mapping[str, Quantity], what: str) -> list[Violation]:
    out = []
    for resource, cap in caps.items():
        for kind, values in (("request", container.requests), ("limit", container.limits)):
            value = values.get(resource)
            if value is not None and value > cap.milli:
                message = (
                    f"container {container.name}: {resource} {kind} {_q(value, resource)} is "
                    f"above {what} {cap.text}"
                )
                out.append(Violation(container.name, resource, value, cap.milli, message))
    return out


def _q(milli: int, resource: str) -> str:
    return format_milli(milli, resource)
