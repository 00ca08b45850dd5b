"""The DAG the real-node suite runs through real Airflow (tests/e2e/test_airflow.py): parsed by
Airflow on the host and, from the worker image, in each worker pod; never imported by podtier.

One task per case podtier handles: `light` asks for tier light, `heavy` for tier heavy (podtier
places it on the compute pool), `hungry` asks for tier light (1Gi limit) and allocates 1.2 GiB:
the kernel kills it, Airflow retries it (try 2), podtier gives the retry more memory and it
succeeds. `hungry_start` (tier light too) needs 1.2 GiB from its pod's first instant
(startup_ballast.py): killed before the task started, the provider relaunches its pod for the
same try, podtier raises the relaunch, and try 1 succeeds."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

HUNGRY_BYTES = 1200 * 2**20


def tier(name: str, env: dict[str, str] | None = None) -> dict[str, k8s.V1Pod]:
    """executor_config asking podtier for a tier (the policy's tierKeys include label `tier`),
    with environment variables for the worker container."""
    spec = None
    if env:
        variables = [k8s.V1EnvVar(name=k, value=v) for k, v in env.items()]
        spec = k8s.V1PodSpec(containers=[k8s.V1Container(name="base", env=variables)])
    metadata = k8s.V1ObjectMeta(labels={"tier": name})
    return {"pod_override": k8s.V1Pod(metadata=metadata, spec=spec)}


with DAG(
    "podtier_e2e",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=5)},
):

    @task(executor_config=tier("light"))
    def light() -> str:
        return "light"

    @task(executor_config=tier("heavy"))
    def heavy() -> int:
        return sum(i * i for i in range(3_000_000))

    @task(executor_config=tier("light"))
    def hungry() -> int:
        data = b"x" * HUNGRY_BYTES  # every page written: resident, counted by the memory cgroup
        return len(data)

    @task(executor_config=tier("light", {"PODTIER_E2E_STARTUP_BYTES": str(HUNGRY_BYTES)}))
    def hungry_start() -> str:
        return "started with 1.2 GiB held"

    light()
    heavy()
    hungry()
    hungry_start()
