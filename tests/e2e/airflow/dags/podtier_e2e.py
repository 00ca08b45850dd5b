"""The DAG the real-node suite runs through real Airflow (tests/e2e/test_airflow.py): parsed by
Airflow on the host and, from the worker image, in each worker pod; never imported by podtier.

One task per case podtier handles: `light` asks for tier light, `heavy` for tier heavy (podtier
places it on the compute pool), `hungry` asks for tier light (1Gi limit) and allocates 1.2 GiB:
the kernel kills it, Airflow retries it (try 2), podtier gives the retry more memory and it
succeeds."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

HUNGRY_BYTES = 1200 * 2**20


def tier(name: str) -> dict[str, k8s.V1Pod]:
    """executor_config asking podtier for a tier (the policy's tierKeys include label `tier`)."""
    return {"pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(labels={"tier": name}))}


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

    light()
    heavy()
    hungry()
