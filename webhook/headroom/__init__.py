"""Cluster headroom: which node can take a pod now, from a live watch or a `kubectl` dump.

`open_headroom(cluster, ...)` is what the CLI calls:

- `none`: headroom off (`NoHeadroom`): always ready, never known.
- `auto`: the live watch; in-cluster config when running in a pod, else `kubeconfig`,
  else `$KUBECONFIG`, else `~/.kube/config`.
- anything else: a file with `kubectl get nodes,pods -A -o json` (or `-o yaml`) output.

Every object returned has `ready()`, `transaction(now)`, `start()` and `stop()` (no-ops
except for the live watch). Modules: `taints` and `records` (pure: reading Nodes and Pods),
`state` (pure: the picture, events, holds, reservations), `groups` (pure: the node index behind
each lookup), `decode` (pods keep the fields read), `tracker` (locking, freshness, the
`CapacityView`), `peers` (shares among replicas), `watch` (list + watch threads), `snapshot`
(files), `live`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client, config

from podtier.webhook.core.capacity import NoHeadroom
from podtier.webhook.headroom.live import LiveHeadroom
from podtier.webhook.headroom.snapshot import ClusterFileError, load_cluster_file
from podtier.webhook.headroom.tracker import ClusterHeadroom

__all__ = [
    "ClusterFileError",
    "ClusterHeadroom",
    "HeadroomConfigError",
    "LiveHeadroom",
    "StaticHeadroom",
    "open_headroom",
]


class HeadroomConfigError(ValueError):
    """`--cluster` (or the kubeconfig it leads to) cannot be used; the message says why."""


class StaticHeadroom(ClusterHeadroom):
    """A file snapshot: loaded once, never stale."""

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def open_headroom(
    cluster: str,
    kubeconfig: str | None = None,
    stale_after: float = 60.0,
    reservation_ttl: float = 30.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    namespaces: bool = False,
) -> NoHeadroom | StaticHeadroom | LiveHeadroom:
    """`namespaces`: also watch Namespaces, for rules with a `namespaceSelector` (live only)."""
    if namespaces and cluster != "auto":
        raise HeadroomConfigError(
            f"--namespace-labels needs --cluster auto (the live watch), not --cluster {cluster}"
        )
    if cluster == "none":
        return NoHeadroom()
    if cluster == "auto":
        return LiveHeadroom(
            cluster_configuration(kubeconfig),
            stale_after=stale_after,
            reservation_ttl=reservation_ttl,
            clock=clock,
            namespaces=namespaces,
        )
    path = Path(cluster)
    if not path.is_file():
        raise HeadroomConfigError(
            f'--cluster "{cluster}": no such file (expected none, auto, or the output of '
            "kubectl get nodes,pods -A -o json)"
        )
    headroom = StaticHeadroom(
        source=f"file {cluster}", reservation_ttl=reservation_ttl, clock=clock, static=True
    )
    try:
        load_cluster_file(path, headroom=headroom)
    except ClusterFileError as err:
        raise HeadroomConfigError(str(err)) from None
    return headroom


def cluster_configuration(kubeconfig: str | None) -> client.Configuration:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return configuration
    except config.ConfigException:
        pass
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=configuration
        )
    except (config.ConfigException, OSError, TypeError) as err:
        where = path or "~/.kube/config"
        raise HeadroomConfigError(
            f"--cluster auto: not running in a cluster, and kubeconfig {where} cannot be "
            f"used: {err}"
        ) from None
    return configuration
