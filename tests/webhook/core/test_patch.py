import copy

import jsonpatch
import pytest

from podtier.webhook.core.decide import decide
from podtier.webhook.core.patch import build_patch, escape
from podtier.webhook.core.pod import view_pod
from tests.webhook.core.fakes import EXECUTOR_LABELS, POLICY, UNKNOWN, FakeCapacity, airflow_pod


def mutate(pod):
    view = view_pod(pod)
    ops = build_patch(view, decide(view, POLICY, UNKNOWN))
    return ops, jsonpatch.apply_patch(copy.deepcopy(pod), ops)


@pytest.mark.parametrize(
    ("key", "escaped"),
    [
        pytest.param("nvidia.com/gpu", "nvidia.com~1gpu", id="slash"),
        pytest.param("a~b", "a~0b", id="tilde"),
        pytest.param("x~/y", "x~0~1y", id="both-in-order"),
    ],
)
def test_rfc6901_escaping(key, escaped):
    assert escape(key) == escaped


@pytest.mark.parametrize(
    "pod",
    [
        pytest.param(airflow_pod(), id="no-resources-key"),
        pytest.param(airflow_pod({}), id="empty-resources"),
        pytest.param(airflow_pod({"requests": {"cpu": "500m"}}), id="requests-only"),
        pytest.param(airflow_pod(node_selector={}), id="empty-node-selector"),
        pytest.param(airflow_pod(tolerations=[]), id="empty-tolerations"),
        pytest.param(airflow_pod(annotations={}), id="empty-annotations"),
    ],
)
def test_parents_are_created_before_leaves(pod):
    ops, patched = mutate(pod)
    base = patched["spec"]["containers"][0]
    assert base["resources"]["limits"]["cpu"] == "2"
    assert patched["spec"]["nodeSelector"] == {"node-type": "worker"}
    assert {"key": "dedicated", "operator": "Equal", "value": "worker", "effect": "NoSchedule"} in (
        patched["spec"]["tolerations"]
    )
    assert patched["metadata"]["annotations"]["podtier.io/tier"] == "medium"


def test_gpu_paths_are_escaped_and_apply():
    pod = airflow_pod(
        {"requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}},
        labels={**EXECUTOR_LABELS, "tier": "gpu"},
    )
    ops, patched = mutate(pod)
    paths = [op["path"] for op in ops]
    assert "/spec/containers/0/resources/limits" in paths
    assert patched["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    gpu_pod = airflow_pod(
        {"requests": {"cpu": "2"}, "limits": {"cpu": "4"}},
        labels={**EXECUTOR_LABELS, "tier": "gpu"},
    )
    ops, patched = mutate(gpu_pod)
    assert "/spec/containers/0/resources/requests/nvidia.com~1gpu" in [op["path"] for op in ops]
    assert patched["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"


def test_other_node_selector_keys_and_tolerations_are_kept():
    mine = {"key": "team", "operator": "Exists", "effect": "NoSchedule"}
    pod = airflow_pod(node_selector={"zone": "eu-1a", "node-type": "gpu"}, tolerations=[mine])
    _, patched = mutate(pod)
    assert patched["spec"]["nodeSelector"] == {"zone": "eu-1a", "node-type": "worker"}
    assert patched["spec"]["tolerations"][0] == mine
    assert len(patched["spec"]["tolerations"]) == 2


def test_airflow_labels_are_never_touched():
    ops, patched = mutate(airflow_pod())
    assert not [op for op in ops if op["path"].startswith("/metadata/labels")]
    assert patched["metadata"]["labels"] == EXECUTOR_LABELS


def test_mutating_the_output_again_is_an_empty_patch():
    _, once = mutate(airflow_pod({"requests": {"cpu": "300m"}}))
    ops, twice = mutate(once)
    assert ops == []
    assert twice == once


def mutate_with(pod, capacity):
    view = view_pod(pod)
    ops = build_patch(view, decide(view, POLICY, capacity))
    return ops, jsonpatch.apply_patch(copy.deepcopy(pod), ops)


def test_the_node_podtier_counted_is_written_and_kept_on_reinvocation():
    """Other replicas hold the waiting pod's room on that node (headroom, "Replicas")."""
    capacity = FakeCapacity({"worker": "w-3"})
    _, once = mutate_with(airflow_pod(), capacity)
    assert once["metadata"]["annotations"]["podtier.io/node"] == "w-3"
    assert "node w-3 has room" in once["metadata"]["annotations"]["podtier.io/reason"]
    ops, twice = mutate_with(once, FakeCapacity({"worker": "w-9"}))
    assert ops == [] and twice == once


@pytest.mark.parametrize(
    "capacity",
    [
        pytest.param(UNKNOWN, id="headroom-unknown"),
        pytest.param(FakeCapacity({"worker": None}), id="no-room"),
    ],
)
def test_a_counted_node_the_decision_did_not_count_is_removed(capacity):
    """A spec copied from a placed pod (or a forged annotation) would make every replica hold
    the pod's room on a node nobody counted it on."""
    ops, patched = mutate_with(airflow_pod(annotations={"podtier.io/node": "w-1"}), capacity)
    assert {"op": "remove", "path": "/metadata/annotations/podtier.io~1node"} in ops
    assert "podtier.io/node" not in patched["metadata"]["annotations"]
