"""Size the main (`base`) container from its tier: fill what is missing, or override.

A `Target` (what the task's history recommends, `core.rightsizing`) takes the place of the
tier's requests and limits for the resources it names, never above the tier's limits (the
tier's guard-rails), and may leave a resource without a limit.

Explicit values are kept in `missing` mode. A filled request never exceeds the container's own
limit (it takes the limit instead), and a limit is never filled below the container's own
request: the mutation never makes a limit below a request. A pod whose requests exceed every
tier keeps its limits as they are, so validation can judge it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from podtier.webhook.core.pod import ContainerView
from podtier.webhook.core.policy import OverrideMode, Tier
from podtier.webhook.core.quantity import format_milli


@dataclass(frozen=True)
class Target:
    """Sizes (milli-units) that replace the tier's for the resources named."""

    requests: Mapping[str, int] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    unlimited: frozenset[str] = frozenset()  # resources that get no limit from the tier


@dataclass(frozen=True)
class Sizing:
    # What to write into the container (resource -> quantity text), only where it changes.
    set_requests: Mapping[str, str] = field(default_factory=dict)
    set_limits: Mapping[str, str] = field(default_factory=dict)
    # The container's resources after the change, in milli-units.
    requests: Mapping[str, int] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    # True when the tier, not the pod, supplied the requests of the tier's resources.
    tier_filled: bool = False


def size_container(
    container: ContainerView,
    tier: Tier,
    mode: OverrideMode,
    above_every_tier: bool,
    target: Target | None = None,
) -> Sizing:
    requests = dict(container.requests)
    limits = dict(container.limits)
    if mode == "never":
        return Sizing(requests=requests, limits=limits)

    want_requests, want_limits = _wanted(tier, target)
    set_requests: dict[str, str] = {}
    set_limits: dict[str, str] = {}
    own = [name for name in tier.requests if container.requests.get(name)]
    tier_filled = not own

    for name, (value, text) in want_requests.items():
        if mode == "always" or name not in requests:
            keeps_own_limit = mode == "missing" or name not in want_limits
            if keeps_own_limit and name in limits and limits[name] < value:
                # The container's own limit stays and is lower than the request: request
                # the limit.
                value, text = limits[name], format_milli(limits[name], name)
            if requests.get(name) != value:
                requests[name] = value
                set_requests[name] = text

    if not (above_every_tier and mode == "missing"):
        for name, (value, text) in want_limits.items():
            if mode == "always" or name not in limits:
                if value < requests.get(name, 0):
                    continue  # would be below the request: leave it for validation to judge
                if limits.get(name) != value:
                    limits[name] = value
                    set_limits[name] = text

    return Sizing(set_requests, set_limits, requests, limits, tier_filled)


def _wanted(
    tier: Tier, target: Target | None
) -> tuple[dict[str, tuple[int, str]], dict[str, tuple[int, str]]]:
    """The requests and limits to give (milli-units, text): the tier's, with the target's in
    place of them where it names a resource, each held at the tier's limit."""
    requests = {name: (q.milli, q.text) for name, q in tier.requests.items()}
    limits = {name: (q.milli, q.text) for name, q in tier.limits.items()}
    if target is None:
        return requests, limits
    for wanted, given in ((requests, target.requests), (limits, target.limits)):
        for name, value in given.items():
            cap = tier.limits.get(name)
            value = min(value, cap.milli) if cap is not None else value
            wanted[name] = (value, format_milli(value, name))
    for name in target.unlimited:
        limits.pop(name, None)
    return requests, limits
