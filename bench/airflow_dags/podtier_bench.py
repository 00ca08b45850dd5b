"""The DAG `bench/airflow_executor.py` runs through Airflow's KubernetesExecutor (parsed by
Airflow in its own venv, never imported by podtier): one task of each shape podtier sees."""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

# Seconds before a failed try is retried (Airflow's default is 300; the bench sets it).
RETRY_DELAY = dt.timedelta(seconds=float(os.environ.get("PODTIER_BENCH_RETRY_DELAY", "0")))
LONG_TASK_ID = "transform_customer_orders_into_the_quarterly_revenue_report_for_finance"

with DAG(
    "podtier_bench",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={"retries": 1, "retry_delay": RETRY_DELAY},
):
    BashOperator(task_id="plain", bash_command="true")
    BashOperator(
        task_id="light",
        bash_command="true",
        executor_config={
            "pod_override": k8s.V1Pod(metadata=k8s.V1ObjectMeta(labels={"tier": "light"}))
        },
    )
    BashOperator(task_id="oom", bash_command="true")
    BashOperator(task_id=LONG_TASK_ID, bash_command="true")

    @task
    def fan(part: int) -> int:
        return part

    fan.expand(part=[0, 1])
