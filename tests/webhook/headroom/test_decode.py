"""Lean decoding gives headroom the same picture as parsing every pod whole: the same records
for every shape of pod, ERROR events whole, and the same cluster from a dump or a List."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podtier.webhook.headroom import ClusterHeadroom
from podtier.webhook.headroom.decode import decode_event, decode_page, decode_pod
from podtier.webhook.headroom.records import RecordError, pod_record
from podtier.webhook.headroom.snapshot import load_cluster_file
from tests.webhook.headroom.builders import init_container, pod

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import cluster_gen  # noqa: E402

POOLED = {"podtier.io/pool": "worker", "podtier.io/tier": "light", "dag_id": "d"}


def record_or_error(raw: Any) -> Any:
    """The record, or what went wrong (lean and whole must go wrong alike)."""
    try:
        return pod_record(raw)
    except RecordError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - compared, not hidden
        return type(err).__name__


PODS = {
    "generated-running": cluster_gen.pod_object("worker-00001", "worker", 7, "medium"),
    "generated-succeeded": cluster_gen.pod_object("gpu-00001", "gpu", 8, "gpu", "Succeeded"),
    "bound": pod("a", "w1", cpu="3"),
    "pending-placed": {
        **pod("p", "", cpu="1"),
        "metadata": {"name": "p", "namespace": "airflow", "annotations": POOLED},
    },
    "init-and-sidecar": {
        **pod("i", "w1", cpu="1"),
        "spec": {
            "nodeName": "w1",
            "containers": [{"name": "base", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                init_container("setup", cpu="2"),
                init_container("proxy", cpu="500m", sidecar=True),
            ],
            "overhead": {"cpu": "100m"},
        },
    },
    "no-resources": {"metadata": {"name": "n", "namespace": "x"}, "spec": {"containers": [{}]}},
    "spec-a-list": {"metadata": {"name": "s", "namespace": "x"}, "spec": []},
    "containers-null": {"metadata": {"name": "c", "namespace": "x"}, "spec": {"containers": None}},
    "container-a-string": {
        "metadata": {"name": "c", "namespace": "x"},
        "spec": {"containers": ["x"]},
    },
    "bad-quantity": pod("q", "w1", cpu="lots"),
    "annotations-a-list": {**pod("l", "w1", cpu="1"), "metadata": {"name": "l", "annotations": []}},
    "phase-a-list": {**pod("ph", "w1", cpu="1"), "status": {"phase": ["Running"]}},
    "counted-on-a-node": pod("c", cpu="2", pool="compute", counted_on="c1"),
}


@pytest.mark.parametrize("raw", list(PODS.values()), ids=list(PODS))
def test_a_lean_pod_gives_the_same_record_as_a_whole_one(raw: dict[str, Any]) -> None:
    data = orjson.dumps(raw)
    assert record_or_error(decode_pod(data, lean=True)) == record_or_error(orjson.loads(data))


JSON_SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
PATHS = [
    ("spec",),
    ("spec", "containers"),
    ("spec", "containers", 0),
    ("spec", "containers", 0, "resources"),
    ("spec", "nodeName"),
    ("spec", "tolerations"),
    ("spec", "nodeSelector"),
    ("metadata",),
    ("metadata", "annotations"),
    ("metadata", "annotations", "podtier.io/pool"),
    ("metadata", "annotations", "podtier.io/node"),
    ("status",),
    ("status", "phase"),
]


@settings(max_examples=150, deadline=None)
@given(where=st.sampled_from(PATHS), value=JSON, phase=st.sampled_from(["Running", "Pending"]))
def test_any_damage_to_a_pod_reads_the_same_lean_and_whole(where, value, phase) -> None:  # type: ignore[no-untyped-def]
    raw = copy.deepcopy(PODS["pending-placed" if phase == "Pending" else "bound"])
    target = raw
    for step in where[:-1]:
        target = target.setdefault(step, {}) if isinstance(step, str) else target[step]
    target[where[-1]] = value
    data = orjson.dumps(raw)
    assert record_or_error(decode_pod(data, lean=True)) == record_or_error(orjson.loads(data))


def test_a_pod_headroom_cannot_read_is_named_with_its_field() -> None:
    assert record_or_error(PODS["phase-a-list"]) == (
        "Pod airflow/ph: status.phase is not a string: ['Running']"
    )
    assert pod_record(PODS["counted-on-a-node"]).counted_on == "c1"


def test_watch_events_keep_what_the_watcher_reads() -> None:
    error = orjson.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410}})
    assert decode_event("Pod", error, lean=True)["object"]["code"] == 410
    bookmark = orjson.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert decode_event("Pod", bookmark, lean=True)["object"]["metadata"]["resourceVersion"] == "9"
    added = orjson.dumps({"type": "ADDED", "object": PODS["generated-running"]})
    event = decode_event("Pod", added, lean=True)
    assert event["type"] == "ADDED"
    assert pod_record(event["object"]) == pod_record(PODS["generated-running"])
    assert "env" not in json.dumps(event), "the lean decode kept a field headroom does not read"


def test_a_page_keeps_its_continue_token_and_resource_version() -> None:
    meta = {"resourceVersion": "77", "continue": "token"}
    data = orjson.dumps({"kind": "PodList", "metadata": meta, "items": [PODS["bound"]]})
    page = decode_page("Pod", data, lean=True)
    assert page["metadata"] == meta and len(page["items"]) == 1


def test_invalid_json_is_orjsons_error_either_way() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        decode_pod(b'{"metadata": ', lean=True)
    with pytest.raises(orjson.JSONDecodeError):
        decode_event("Pod", b"not json", lean=True)


def picture(headroom: ClusterHeadroom) -> tuple[Any, ...]:
    state = headroom.state
    reservations_free = {
        node: {r: state.free(node, r) for r in ("cpu", "memory", "pods", "nvidia.com/gpu")}
        for node in state.nodes
    }
    return dict(state.pods), dict(state.pod_requests), reservations_free


def test_a_kubectl_dump_gives_the_same_picture_lean_and_whole(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    cluster_gen.write_dump(str(path), (3, 2, 1))
    lean = load_cluster_file(path)
    whole = ClusterHeadroom(source="whole", static=True)
    whole.add_pod_listener(lambda event_type, key, raw: None)  # a listener reads pods whole
    load_cluster_file(path, headroom=whole)
    assert lean.lean_pods and not whole.lean_pods
    assert len(lean.state.pods) == 6 * 30
    assert picture(lean) == picture(whole)
    with lean.transaction(time.monotonic()) as view:
        assert view.find_node({"node-type": "worker"}, [cluster_gen.TOLERATIONS["worker"]], {})
