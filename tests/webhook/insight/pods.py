"""Airflow pods as the API server sends them, with the fields insight reads set explicitly,
a policy with scaling on its pools, and a live watch of the test API server with insight on."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import yaml
from kubernetes import client
from prometheus_client import CollectorRegistry

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.headroom import LiveHeadroom
from podtier.webhook.insight.job import Insight
from podtier.webhook.policy import Policy
from podtier.webhook.policy.load import load_policy_text
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.feeds import fast_backoff, wait_for

WORKER_SELECTOR = {"node-type": "worker"}
Registry = CollectorRegistry


def stamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def airflow_pod(
    name: str,
    *,
    phase: str = "Pending",
    namespace: str = "airflow",
    tier: str | None = "medium",
    pool: str | None = "worker",
    node: str = "",
    created: float | None = None,
    scheduled: float | None = None,
    finished: float | None = None,
    labels: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    cpu: str = "1",
    memory: str = "2Gi",
) -> dict[str, Any]:
    """A KubernetesExecutor worker pod. `finished` sets every container's terminated state."""
    annotations = {"dag_id": "etl", "task_id": f"load_{name}"}
    if tier is not None:
        annotations["podtier.io/tier"] = tier
    if pool is not None:
        annotations["podtier.io/pool"] = pool
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {"kubernetes_executor": "True", "dag_id": "etl", "task_id": f"load_{name}"}
        if labels is None
        else labels,
        "annotations": annotations,
    }
    if created is not None:
        metadata["creationTimestamp"] = stamp(created)
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "base",
                "image": "apache/airflow",
                "resources": {"requests": {"cpu": cpu, "memory": memory}},
            }
        ],
        "nodeSelector": dict(WORKER_SELECTOR if node_selector is None else node_selector),
    }
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {"phase": phase}
    if scheduled is not None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp(scheduled)}
        ]
    if phase in ("Running", "Succeeded", "Failed"):
        state: dict[str, Any] = {"running": {"startedAt": stamp(time.time() - 7200)}}
        if finished is not None:
            state = {"terminated": {"exitCode": 0, "finishedAt": stamp(finished)}}
        status["containerStatuses"] = [{"name": "base", "state": state}]
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec, "status": status}


def plain_pod(name: str, phase: str = "Succeeded", finished: float | None = None) -> dict[str, Any]:
    """A pod that is not an Airflow pod (no Airflow labels)."""
    pod = airflow_pod(name, phase=phase, finished=finished, labels={"app": "web"}, node="w1")
    return pod


def scaled_policy(scaling: dict[str, dict[str, int]]) -> Policy:
    """The default policy with `scaling` set on the named pools."""
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    for pool, settings in scaling.items():
        doc["spec"]["pools"][pool]["scaling"] = copy.deepcopy(settings)
    return load_policy_text([("scaled.yaml", yaml.safe_dump(doc))])


@contextmanager
def watched(
    api: KubeAPI, policy: Policy
) -> Iterator[tuple[LiveHeadroom, Insight, CollectorRegistry]]:
    """The live watch of `api` with insight on, its gauges in a registry of their own."""
    configuration = client.Configuration(host=api.url)
    configuration.retries = False
    headroom = LiveHeadroom(configuration, backoff=fast_backoff)
    registry = CollectorRegistry()
    insight = Insight(headroom, policy, registry=registry)
    headroom.start()
    try:
        wait_for(headroom.ready, what="first sync")
        yield headroom, insight, registry
    finally:
        headroom.stop()
