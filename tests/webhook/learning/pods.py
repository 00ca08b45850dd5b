"""Airflow worker pods through their life, as the API server shows them to the watch: built
from the executor fixture (a) with podtier's annotations, then Running, then ended as the
kubelet writes it (`state.terminated` with exitCode, reason, startedAt, finishedAt)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.conftest import load_review

RUN_ID = "manual__2026-11-26T05:00:00+00:00"
T0 = 1_764_133_200.0  # 2025-11-26T05:00:00Z


def stamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def worker_pod(
    name: str = "sales-etl-extract-orders-1",
    *,
    try_number: int = 1,
    map_index: int | None = None,
    dag_id: str = "sales_etl",
    task_id: str = "extract_orders",
    run_id: str = RUN_ID,
    namespace: str = "airflow",
    memory_limit: str = "4Gi",
    tier: str = "medium",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Fixture (a)'s worker pod as podtier admitted it (tier medium), Pending, with a uid."""
    pod = copy.deepcopy(load_review("a")["request"]["object"])
    meta = pod["metadata"]
    meta.update(name=name, namespace=namespace, uid=str(uuid.uuid4()))
    meta["labels"].update(dag_id=dag_id, task_id=task_id, try_number=str(try_number))
    notes = meta.setdefault("annotations", {})
    notes.update(dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=str(try_number))
    if map_index is not None:
        meta["labels"]["map_index"] = notes["map_index"] = str(map_index)
    notes.update({"podtier.io/tier": tier, "podtier.io/pool": "worker", **(annotations or {})})
    base = pod["spec"]["containers"][0]
    base["resources"] = {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": memory_limit},
    }
    pod["spec"]["nodeSelector"] = {"node-type": "worker"}
    pod["status"] = {"phase": "Pending"}
    return pod


def running(pod: dict[str, Any], started: float = T0) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["spec"]["nodeName"] = "w1"
    pod["status"] = {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "base",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp(started)}},
            }
        ],
    }
    return pod


def ended(
    pod: dict[str, Any],
    *,
    reason: str = "OOMKilled",
    exit_code: int = 137,
    started: float = T0,
    finished: float = T0 + 300,
) -> dict[str, Any]:
    """The pod as the kubelet leaves it once `base` ended (Airflow pods never restart)."""
    pod = copy.deepcopy(pod)
    pod["spec"]["nodeName"] = "w1"
    pod["status"] = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [
            {
                "name": "base",
                "ready": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": reason,
                        "startedAt": stamp(started),
                        "finishedAt": stamp(finished),
                    }
                },
            }
        ],
    }
    return pod
