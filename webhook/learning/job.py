"""Learning in `podtier serve --learning`: wiring, and the background job.

`LiveLearning(headroom, insight, ...)` must be made before the headroom starts: its recorder
listens to the pod feed from the first list, and its usage sampler rides insight's PodMetrics
poller. Every replica watches the TaskProfiles (`store`, the `ProfilesSource` the app reads);
`job` is a `ServeSetup.background` factory that starts that watch and, every `interval`
seconds, runs a writer round (which writes only while this replica holds the Lease). On
shutdown the watch stops and the Lease is given up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubernetes import client

from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.headroom import LiveHeadroom
from podtier.webhook.insight.job import Insight
from podtier.webhook.learning.prometheus import PrometheusUsage
from podtier.webhook.learning.recorder import OutcomeRecorder
from podtier.webhook.learning.watch import ProfileStore, ProfileWatch
from podtier.webhook.learning.writer import ProfileWriter
from podtier.webhook.lease import LeaderLease
from podtier.webhook.policy.reload import HoldsPolicy

log = logging.getLogger("podtier.learning")


class LiveLearning:
    def __init__(
        self,
        headroom: LiveHeadroom,
        insight: Insight,
        *,
        lease_name: str,
        namespace: str,
        identity: str,
        prometheus_url: str | None = None,
        seal: EscalationSeal | None = None,
        lease_duration: float = 15.0,
        interval: float = 2.0,
    ) -> None:
        configuration = headroom.api_client.configuration
        self.store = ProfileStore(
            source=f"the API server at {configuration.host}", stale_after=headroom.stale_after
        )
        self.recorder = OutcomeRecorder(insight.policy, on_end=self.store.saw_end, seal=seal)
        headroom.add_pod_listener(self.recorder)
        if insight.poller is not None:
            insight.poller.sinks.append(self.recorder.usage)
        self.configuration = configuration
        self.insight = insight
        self.lease_name = lease_name
        self.namespace = namespace
        self.identity = identity
        self.prometheus_url = prometheus_url
        self.lease_duration = lease_duration
        self.interval = interval

    def job(self, holder: HoldsPolicy) -> Callable[[], Awaitable[None]]:
        api_client = client.ApiClient(self.configuration)
        watch = ProfileWatch(self.store, api_client)
        lease = LeaderLease(
            api_client,
            name=self.lease_name,
            namespace=self.namespace,
            identity=self.identity,
            duration=self.lease_duration,
            purpose="learning",
        )
        prometheus = PrometheusUsage(self.prometheus_url) if self.prometheus_url else None
        writer = ProfileWriter(
            self.recorder,
            self.store,
            api_client,
            lease,
            lambda: holder.policy,
            prometheus=prometheus,
        )

        async def run() -> None:
            log.info(
                "learning on",
                extra={
                    "lease": f"{self.namespace}/{self.lease_name}",
                    "holder": self.identity,
                    "prometheus": self.prometheus_url or "",
                },
            )
            watch.start()
            try:
                while True:
                    try:
                        result = await asyncio.to_thread(writer.run_once)
                        if result.written or result.failed:
                            log.info(
                                "learning round: %d profiles written",
                                result.written,
                                extra={
                                    "runs": result.recorded,
                                    "known": result.known,
                                    "failed": result.failed,
                                },
                            )
                    except asyncio.CancelledError:
                        raise
                    except Exception as err:  # noqa: BLE001 - the next round tries again
                        log.warning("learning: %s", err)
                    await asyncio.sleep(self.interval)
            finally:
                await asyncio.to_thread(watch.stop)
                lease.release()
                if prometheus is not None:
                    prometheus.close()
                api_client.close()  # type: ignore[no-untyped-call]

        return run
