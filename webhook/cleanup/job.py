"""Cleanup in `podtier serve --cleanup-after DURATION`: a `ServeSetup.background` factory.

Every `lease_duration / 3` seconds the replica renews (or tries to take) the Lease; every
`settings.interval` seconds (once the watch has synced) the holder runs a cleanup round in a
worker thread. On shutdown
the round stops before its next delete and the Lease is given up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubernetes import client

from podtier.webhook.cleanup.cleaner import Cleaner, CleanupSettings, PodDeleter
from podtier.webhook.insight.census import PodCensus
from podtier.webhook.lease import LeaderLease
from podtier.webhook.policy.reload import HoldsPolicy

log = logging.getLogger("podtier.cleanup")


def cleanup_job(
    census: PodCensus,
    configuration: client.Configuration,
    settings: CleanupSettings,
    *,
    lease_name: str,
    namespace: str,
    identity: str,
    lease_duration: float = 15.0,
    synced: Callable[[], bool] = lambda: True,
) -> Callable[[HoldsPolicy], Callable[[], Awaitable[None]]]:
    """`synced` says when the watch has listed the pods once: no round runs before that."""

    def make(holder: HoldsPolicy) -> Callable[[], Awaitable[None]]:
        api_client = client.ApiClient(configuration)
        lease = LeaderLease(
            api_client,
            name=lease_name,
            namespace=namespace,
            identity=identity,
            duration=lease_duration,
        )
        cleaner = Cleaner(
            census.finished, lambda: holder.policy, PodDeleter(api_client), lease, settings
        )

        async def run() -> None:
            log.info(
                "cleanup on",
                extra={
                    "after_seconds": settings.after,
                    "rate": settings.rate,
                    "lease": f"{namespace}/{lease_name}",
                    "holder": identity,
                },
            )
            loop = asyncio.get_running_loop()
            next_round = loop.time()
            try:
                while True:
                    try:
                        if loop.time() >= next_round and synced():
                            next_round = loop.time() + settings.interval
                            result = await asyncio.to_thread(cleaner.run_once)
                            if result.deleted or result.stopped_by not in ("", "not leader"):
                                log.info(
                                    "cleanup round: %d deleted",
                                    len(result.deleted),
                                    extra={
                                        "gone": result.gone,
                                        "changed": result.changed,
                                        "stopped_by": result.stopped_by,
                                    },
                                )
                        else:
                            await asyncio.to_thread(lease.ensure)
                    except asyncio.CancelledError:
                        raise
                    except Exception as err:  # noqa: BLE001 - the next tick tries again
                        log.warning("cleanup: %s", err)
                    await asyncio.sleep(min(lease_duration / 3, settings.interval))
            finally:
                cleaner.stop.set()
                lease.release()
                api_client.close()  # type: ignore[no-untyped-call]

        return run

    return make
