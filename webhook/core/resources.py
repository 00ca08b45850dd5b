"""Resource arithmetic on `dict[str, int]` milli-units, and the scheduler's view of a pod.

`effective_requests` follows kube-scheduler's NodeResourcesFit (`computePodResourceRequest`):
the sum of the app containers, with restartable init containers (sidecars) added, or the
largest regular init container plus the sidecars started before it, whichever is larger, plus
the pod's `overhead`. Each pod also takes one unit of the node's `pods` capacity.

Rounding, as the scheduler's `Resource.Add` does it: a pod's cpu counts in whole millicores,
every other resource (memory, ephemeral-storage, GPUs) in whole units, rounded up once for the
pod's sum. Memory written as `128m` (0.128 bytes, a classic typo for 128Mi) is one byte to the
scheduler, so two such pods on a node take two bytes, not 0.256. (Each container's quantity is
first rounded up to a milli-unit: sub-millicore cpu such as `500u` may count up to 1m more per
container than the scheduler counts.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from podtier.webhook.core.quantity import QuantityError, to_milli

Resources = dict[str, int]

POD_SLOT = "pods"


class ResourceError(ValueError):
    """A resource field that cannot be read; `path` is the field path in the pod."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def parse_resource_map(raw: object, path: str) -> Resources:
    """`{"cpu": "500m"}` -> `{"cpu": 500}`; errors name the field path."""
    if raw is None:
        return {}
    if type(raw) is not dict and not isinstance(raw, Mapping):  # dict first: no ABC lookup
        raise ResourceError(path, f"expected a map of quantities, got {type(raw).__name__}")
    out: Resources = {}
    for name, value in raw.items():
        try:
            out[str(name)] = to_milli(value)
        except QuantityError as err:
            raise ResourceError(f"{path}.{name}", str(err)) from None
    return out


def container_requests(container: Mapping[str, Any], path: str) -> Resources:
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise ResourceError(f"{path}.resources", "expected an object")
    return parse_resource_map(resources.get("requests"), f"{path}.resources.requests")


def effective_requests(spec: Mapping[str, Any]) -> Resources:
    """What the scheduler counts against a node's allocatable for this pod spec."""
    app = [
        container_requests(c, f"spec.containers[{i}]")
        for i, c in enumerate(_containers(spec, "containers"))
    ]
    init = [
        (container_requests(c, f"spec.initContainers[{i}]"), c.get("restartPolicy") == "Always")
        for i, c in enumerate(_containers(spec, "initContainers"))
    ]
    return combine_requests(app, init, parse_resource_map(spec.get("overhead"), "spec.overhead"))


def combine_requests(
    app: Iterable[Mapping[str, int]],
    init: Iterable[tuple[Mapping[str, int], bool]],
    overhead: Mapping[str, int],
) -> Resources:
    """The scheduler's sum: app containers, plus sidecars (init containers with
    `restartPolicy: Always`), or the largest regular init container running beside the
    sidecars started before it, whichever is larger; plus overhead and one pod slot."""
    total: Resources = {}
    for requests in app:
        add_into(total, requests)
    sidecars: Resources = {}
    largest_init: Resources = {}
    for requests, is_sidecar in init:
        if is_sidecar:
            add_into(total, requests)
            add_into(sidecars, requests)
        else:
            running = dict(sidecars)
            add_into(running, requests)
            max_into(largest_init, running)
    max_into(total, largest_init)
    add_into(total, overhead)
    total[POD_SLOT] = total.get(POD_SLOT, 0) + 1000
    return whole_units(total)


def whole_units(resources: Resources) -> Resources:
    """Round every resource but cpu up to a whole unit, in place (the scheduler counts memory
    in bytes and cpu in millicores); returns `resources`."""
    for name, value in resources.items():
        if name != "cpu" and value % 1000:
            resources[name] = value - value % 1000 + 1000
    return resources


def add_into(target: Resources, delta: Mapping[str, int], sign: int = 1) -> None:
    for name, value in delta.items():
        target[name] = target.get(name, 0) + sign * value


def max_into(target: Resources, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > target.get(name, 0):
            target[name] = value


def fits(requests: Mapping[str, int], free: Mapping[str, int]) -> bool:
    """True when every requested resource is available. Zero requests always fit, as in the
    scheduler, which skips resources the pod does not ask for."""
    return all(value <= 0 or value <= free.get(name, 0) for name, value in requests.items())


def covers(bigger: Mapping[str, int], smaller: Mapping[str, int]) -> bool:
    """True when `bigger` has at least as much of every resource in `smaller`."""
    return all(value <= bigger.get(name, 0) for name, value in smaller.items())


def _containers(spec: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    containers = spec.get(key)
    if containers is None:
        return ()
    if not isinstance(containers, list):
        raise ResourceError(f"spec.{key}", f"expected a list, got {type(containers).__name__}")
    for i, container in enumerate(containers):
        if not isinstance(container, Mapping):
            raise ResourceError(f"spec.{key}[{i}]", "expected an object")
    return containers
