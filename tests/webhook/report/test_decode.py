"""`report.decode`: what the report's facts make of a Pod or PodMetrics decoded with only the
fields they read is what they make of the object parsed whole (a field `report.facts` starts
to read and `report.decode` does not keep shows here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from podtier.webhook.report.decode import decode_pod, decode_pod_metrics
from podtier.webhook.report.facts import FactError, metrics_usage, pod_run
from tests.webhook.report.builders import priced_policy, raw_pod, small_cluster

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import cluster_history  # noqa: E402

POLICY = priced_policy()
OBJECTS = [*small_cluster(), *cluster_history.history_cluster((1, 1, 1))]
ODD_PODS: dict[str, dict[str, Any]] = {
    "conditions-not-a-list": {**raw_pod("a"), "status": {"phase": "Running", "conditions": "x"}},
    "containers-null": {**raw_pod("b"), "spec": {"containers": None}},
    "labels-a-list": {**raw_pod("c"), "metadata": {"name": "c", "labels": ["x"]}},
    "init-and-sidecar": {
        **raw_pod("d"),
        "spec": {
            "containers": [{"name": "base", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {
                    "name": "side",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                }
            ],
            "overhead": {"cpu": "100m"},
            "nodeName": "w1",
        },
    },
    "bad-quantity": {
        **raw_pod("e"),
        "spec": {"containers": [{"name": "base", "resources": {"requests": {"cpu": "lots"}}}]},
    },
}


def run_or_error(raw: Any) -> Any:
    try:
        return pod_run(raw, POLICY)
    except FactError as err:
        return str(err)


def test_every_pod_of_a_history_gives_the_same_run() -> None:
    pods = [o for o in OBJECTS if o["kind"] == "Pod"]
    runs = [run_or_error(decode_pod(orjson.dumps(p))) for p in pods]
    assert runs == [run_or_error(p) for p in pods]
    assert sum(r is not None for r in runs) >= 90
    assert any(r.oom_killed for r in runs if r) and any(r.finished for r in runs if r)


@pytest.mark.parametrize("name", list(ODD_PODS))
def test_an_odd_pod_gives_the_same_run_or_the_same_error(name: str) -> None:
    raw = ODD_PODS[name]
    assert run_or_error(decode_pod(orjson.dumps(raw))) == run_or_error(raw)


def test_every_pod_metrics_gives_the_same_usage() -> None:
    items = [o for o in OBJECTS if o["kind"] == "PodMetrics"]
    assert len(items) > 10
    for item in items:
        assert metrics_usage(decode_pod_metrics(orjson.dumps(item))) == metrics_usage(item)


def test_pod_metrics_of_an_odd_shape_are_read_whole() -> None:
    item = {"metadata": {"name": "a", "namespace": "n"}, "containers": {"usage": 1}}
    with pytest.raises(FactError, match="containers: expected a list of objects"):
        metrics_usage(decode_pod_metrics(orjson.dumps(item)))
