"""Size the main (`base`) container from its tier: fill what is missing, or override.

Explicit values are kept in `missing` mode. A filled request never exceeds the container's
own limit (it takes the limit instead), and a limit is never filled below the container's own
request: the mutation never makes a limit below a request. A pod whose requests exceed every
tier keeps its limits as they are, so validation can judge it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from podtier.webhook.core.pod import ContainerView
from podtier.webhook.core.quantity import format_milli
from podtier.webhook.policy.model import OverrideMode, Tier


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
    container: ContainerView, tier: Tier, mode: OverrideMode, above_every_tier: bool
) -> Sizing:
    requests = dict(container.requests)
    limits = dict(container.limits)
    if mode == "never":
        return Sizing(requests=requests, limits=limits)

    set_requests: dict[str, str] = {}
    set_limits: dict[str, str] = {}
    own = [name for name in tier.requests if container.requests.get(name)]
    tier_filled = not own

    for name, quantity in tier.requests.items():
        if mode == "always" or name not in requests:
            value, text = quantity.milli, quantity.text
            keeps_own_limit = mode == "missing" or name not in tier.limits
            if keeps_own_limit and name in limits and limits[name] < value:
                # The container's own limit stays and is lower than the tier's request:
                # request the limit.
                value, text = limits[name], format_milli(limits[name], name)
            if requests.get(name) != value:
                requests[name] = value
                set_requests[name] = text

    if not (above_every_tier and mode == "missing"):
        for name, quantity in tier.limits.items():
            if mode == "always" or name not in limits:
                value = quantity.milli
                if value < requests.get(name, 0):
                    continue  # would be below the request: leave it for validation to judge
                if limits.get(name) != value:
                    limits[name] = value
                    set_limits[name] = quantity.text

    return Sizing(set_requests, set_limits, requests, limits, tier_filled)
