"""Live headroom: a `ClusterHeadroom` fed by a `ClusterWatcher`, with `start()` and `stop()`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from podtier.webhook.headroom.tracker import ClusterHeadroom
from podtier.webhook.headroom.watch import Backoff, ClusterWatcher


class LiveHeadroom(ClusterHeadroom):
    def __init__(
        self,
        configuration: client.Configuration,
        *,
        stale_after: float = 60.0,
        reservation_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[], Backoff] = Backoff,
        namespaces: bool = False,
        **watcher_options: Any,
    ) -> None:
        super().__init__(
            source=f"the API server at {configuration.host}",
            stale_after=stale_after,
            reservation_ttl=reservation_ttl,
            clock=clock,
            namespaces=namespaces,
        )
        self.api_client = client.ApiClient(configuration)
        self.watcher = ClusterWatcher(self, self.api_client, backoff=backoff, **watcher_options)

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.api_client.close()  # type: ignore[no-untyped-call]
