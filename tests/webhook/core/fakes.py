"""Small builders and a fake CapacityView for the pure-core tests."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core.capacity import HeadroomStatus
from podtier.webhook.policy.load import load_policy

POLICY = load_policy([DEFAULT_POLICY])
EXECUTOR_LABELS = {
    "dag_id": "sales_etl",
    "task_id": "extract_orders",
    "kubernetes_executor": "True",
    "airflow-worker": "42",
}


def airflow_pod(
    resources: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    extra_containers: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "base", "image": "apache/airflow:3.3.2"}
    if resources is not None:
        base["resources"] = copy.deepcopy(dict(resources))
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "sales-etl-extract-orders-abc",
            "namespace": "airflow",
            "labels": dict(EXECUTOR_LABELS if labels is None else labels),
        },
        "spec": {"containers": [base, *copy.deepcopy(list(extra_containers))]},
    }
    if annotations is not None:
        pod["metadata"]["annotations"] = dict(annotations)
    if node_selector is not None:
        pod["spec"]["nodeSelector"] = dict(node_selector)
    if tolerations is not None:
        pod["spec"]["tolerations"] = copy.deepcopy(list(tolerations))
    return pod


class FakeCapacity:
    """Answers `find_node` from a table keyed by the `node-type` the selector asks for.
    Records every question, so tests can see which pools were tried with which requests."""

    def __init__(self, nodes: Mapping[str, str | None] | None = None, reason: str = "") -> None:
        self.nodes = dict(nodes or {})
        self.status = HeadroomStatus(known=nodes is not None, reason=reason or "synced")
        self.asked: list[tuple[dict[str, str], list[Mapping[str, Any]], dict[str, int]]] = []
        self.reserved: list[tuple[str, dict[str, int], str]] = []

    def find_node(self, node_selector, tolerations, requests):
        self.asked.append((dict(node_selector), list(tolerations), dict(requests)))
        return self.nodes.get(node_selector.get("node-type", ""))

    def find_elsewhere(self, node_selector, tolerations, requests):
        return None  # one replica: its share is every node

    def reserve(self, node, requests, key):
        self.reserved.append((node, dict(requests), key))


UNKNOWN = FakeCapacity(None, reason="disabled by --cluster none")
