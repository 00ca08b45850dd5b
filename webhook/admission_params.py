"""`podtier serve --admission-policy-params NAME`: keep the ValidatingAdmissionPolicy's
parameters (a ConfigMap, see `policy.admission_policy`) equal to the policy being served.

One replica writes at a time: the holder of the Lease `NAME` in the release namespace. Every
`interval` seconds it renews the Lease and, when the policy it serves is not the one the
ConfigMap was last written from (`podtier.io/policy` annotation: name and content hash), reads
the ConfigMap and replaces its data on that resourceVersion (a 409 is retried on the next tick;
a ConfigMap that is gone is created again). A reload therefore reaches the API server's own
check within `interval` seconds of reaching the Lease holder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kubernetes import client

from podtier.webhook.core.policy import Policy
from podtier.webhook.lease import LeaderLease
from podtier.webhook.policy.admission_policy import parameters_configmap
from podtier.webhook.policy.reload import HoldsPolicy

log = logging.getLogger("podtier.admission_params")


class ParamsWriter:
    """Writes the parameters of a policy to the ConfigMap `name` in `namespace`."""

    def __init__(self, api_client: client.ApiClient, name: str, namespace: str) -> None:
        self.api = client.CoreV1Api(api_client)
        self.name = name
        self.namespace = namespace
        self.written: str | None = None  # the policy ident last written (or found written)

    def sync(self, policy: Policy) -> bool:
        """Write the policy's parameters unless they are there already; True when written."""
        if self.written == policy.ident:
            return False
        wanted = parameters_configmap(policy, self.name, self.namespace)
        try:
            current = self.api.read_namespaced_config_map(self.name, self.namespace)
        except client.ApiException as err:
            if err.status != 404:
                raise
            self.api.create_namespaced_config_map(self.namespace, wanted)
            self.written = policy.ident
            return True
        notes = dict(current.metadata.annotations or {})
        if (
            notes.get("podtier.io/policy") == policy.ident
            and (current.data or {}) == wanted["data"]
        ):
            self.written = policy.ident
            return False
        current.data = wanted["data"]
        current.metadata.annotations = {**notes, **wanted["metadata"]["annotations"]}
        self.api.replace_namespaced_config_map(self.name, self.namespace, current)
        self.written = policy.ident
        return True


def admission_params_job(
    configuration: client.Configuration,
    *,
    name: str,
    namespace: str,
    identity: str,
    interval: float = 2.0,
    lease_duration: float = 15.0,
) -> Callable[[HoldsPolicy], Callable[[], Awaitable[None]]]:
    def make(holder: HoldsPolicy) -> Callable[[], Awaitable[None]]:
        api_client = client.ApiClient(configuration)
        lease = LeaderLease(
            api_client,
            name=name,
            namespace=namespace,
            identity=identity,
            duration=lease_duration,
            purpose="admission policy parameters",
        )
        writer = ParamsWriter(api_client, name, namespace)

        async def run() -> None:
            log.info("admission policy parameters on", extra={"configmap": f"{namespace}/{name}"})
            try:
                while True:
                    try:
                        if await asyncio.to_thread(lease.ensure):
                            policy = holder.policy
                            if await asyncio.to_thread(writer.sync, policy):
                                log.info(
                                    "admission policy parameters written",
                                    extra={"policy": policy.ident},
                                )
                        else:
                            writer.written = None  # another replica may write meanwhile
                    except asyncio.CancelledError:
                        raise
                    except Exception as err:  # noqa: BLE001 - the next tick tries again
                        log.warning("admission policy parameters: %s", err)
                    await asyncio.sleep(interval)
            finally:
                lease.release()
                api_client.close()  # type: ignore[no-untyped-call]

        return run

    return make
