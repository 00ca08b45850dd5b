"""Three ways to build the same picture: watch events applied directly, a `kubectl` dump file,
and the live watch of the test API server through the real `kubernetes` client."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client

from podtier.webhook.headroom import ClusterHeadroom, LiveHeadroom, open_headroom
from podtier.webhook.headroom.watch import Backoff
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import as_list


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.01)


def fast_backoff() -> Backoff:
    return Backoff(base=0.02, cap=0.1)


def from_events(objects: list[dict[str, Any]], **options: Any) -> ClusterHeadroom:
    headroom = ClusterHeadroom(source="test events", **options)
    nodes = [o for o in objects if o["kind"] == "Node"]
    pods = [o for o in objects if o["kind"] == "Pod"]
    headroom.relist("Node", [])
    headroom.relist("Pod", [])
    for kind, items in (("Node", nodes), ("Pod", pods)):
        for item in items:
            headroom.apply(kind, "ADDED", item)
    return headroom


def from_file(objects: list[dict[str, Any]], directory: Path) -> ClusterHeadroom:
    path = directory / "cluster.json"
    path.write_text(json.dumps(as_list(*objects), indent=4, sort_keys=True))  # kubectl's layout
    headroom = open_headroom(str(path))
    assert isinstance(headroom, ClusterHeadroom)
    return headroom


@contextmanager
def live(api: KubeAPI, **options: Any) -> Iterator[LiveHeadroom]:
    configuration = client.Configuration(host=api.url)
    configuration.retries = False
    options.setdefault("backoff", fast_backoff)
    headroom = LiveHeadroom(configuration, **options)
    headroom.start()
    try:
        yield headroom
    finally:
        headroom.stop()


@contextmanager
def from_live(objects: list[dict[str, Any]]) -> Iterator[LiveHeadroom]:
    with KubeAPI() as api:
        for obj in objects:
            api.put(obj)
        with live(api) as headroom:
            wait_for(headroom.ready, what="first sync")
            yield headroom
