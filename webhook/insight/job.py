"""Insight in `podtier serve`: the census on the headroom watch, the gauges, the poller.

`Insight(headroom, policy)` must be made before the headroom starts (so the census sees the
first list); a file snapshot, already read, is counted again with `load_file`.
`Insight.job` is a `ServeSetup.background` factory: from then on the census and the gauges
follow the served (reloadable) policy and, on a live cluster, the utilization poller runs
every `utilization_interval` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubernetes import client
from prometheus_client import REGISTRY, CollectorRegistry

from podtier.webhook.headroom import ClusterHeadroom, LiveHeadroom
from podtier.webhook.insight.census import PodCensus
from podtier.webhook.insight.collector import InsightCollector
from podtier.webhook.insight.utilization import UtilizationPoller
from podtier.webhook.policy import Policy
from podtier.webhook.policy.reload import HoldsPolicy

log = logging.getLogger("podtier.insight")


class Insight:
    def __init__(
        self,
        headroom: ClusterHeadroom,
        policy: Policy,
        *,
        registry: CollectorRegistry = REGISTRY,
        utilization_interval: float = 60.0,
    ) -> None:
        self._holder: HoldsPolicy | None = None
        self._policy = policy
        self.census = PodCensus(self.policy, requests_of=headroom.state.pod_requests.get)
        headroom.add_pod_listener(self.census)
        self.poller: UtilizationPoller | None = None
        self._api_client: client.ApiClient | None = None
        if isinstance(headroom, LiveHeadroom):
            self._api_client = client.ApiClient(headroom.api_client.configuration)
            self.poller = UtilizationPoller(self._api_client, self.census)
        self.utilization_interval = utilization_interval
        self.collector = InsightCollector(
            self.census, self.policy, self.poller.current if self.poller else None
        )
        registry.register(self.collector)

    def load_file(self, path: str) -> None:
        """Count the pods of a `kubectl get -o json` file (headroom read it before the census
        was listening): `podtier serve --cluster FILE`."""
        from podtier.webhook.headroom.decode import PodFields
        from podtier.webhook.headroom.records import pod_key
        from podtier.webhook.headroom.snapshot import file_pods

        for raw in file_pods(path, PodFields.LISTENERS):
            self.census("ADDED", pod_key(raw), raw)

    def policy(self) -> Policy:
        """The policy being served (it may have been reloaded)."""
        return self._holder.policy if self._holder is not None else self._policy

    def job(self, holder: HoldsPolicy) -> Callable[[], Awaitable[None]]:
        self._holder = holder

        async def poll() -> None:
            if self.poller is None:
                return
            while True:
                try:
                    await asyncio.to_thread(self.poller.poll_once)
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - try again at the next poll
                    log.warning("pool utilization poll failed: %s", err)
                await asyncio.sleep(self.utilization_interval)

        return poll
