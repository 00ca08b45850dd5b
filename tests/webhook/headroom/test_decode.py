"""Typed decoding gives headroom and the pod listeners what parsing every pod whole gives them:
the same records, census places, facts and outcomes for every shape of pod, ERROR events whole,
and the same cluster from a dump or a List."""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.headroom import ClusterHeadroom
from podtier.webhook.headroom.decode import (
    PodFields,
    decode_event,
    decode_page,
    decode_pod,
    pod_conditions,
    pod_tolerations,
)
from podtier.webhook.headroom.records import RecordError, pod_record
from podtier.webhook.headroom.running import running_pod
from podtier.webhook.headroom.snapshot import load_cluster_file
from podtier.webhook.insight.census import PodCensus
from podtier.webhook.insight.facts import airflow_facts, airflow_place, scheduled_at
from podtier.webhook.learning.outcome import base_terminated, outcome_of
from podtier.webhook.policy.load import load_policy
from tests.webhook.headroom.builders import init_container, pod
from tests.webhook.insight.pods import airflow_pod
from tests.webhook.learning.pods import ended, running, worker_pod

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import cluster_gen  # noqa: E402

HEADROOM, LISTENERS = PodFields.HEADROOM, PodFields.LISTENERS
POLICY = load_policy([DEFAULT_POLICY])
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
    "airflow-pending": worker_pod(),
    "airflow-running": running(worker_pod()),
    "airflow-oom-killed": ended(running(worker_pod())),
    "airflow-succeeded": ended(running(worker_pod()), reason="Completed", exit_code=0),
    "airflow-scheduled": airflow_pod("s", phase="Running", node="w1", created=1e9, scheduled=2e9),
    "airflow-finished": airflow_pod("f", phase="Succeeded", node="w1", finished=2e9),
    "airflow-by-selector": airflow_pod("n", pool=None, node_selector={"node-type": "worker"}),
    "airflow-started": {
        **airflow_pod("st", phase="Running", node="w1", created=1e9, scheduled=2e9),
        "status": {"phase": "Running", "startTime": "2026-12-07T03:00:00Z"},
    },
}


def what_listeners_read(raw: Any) -> Any:
    """Everything a pod listener makes of a pod (or what went wrong): the census's place and
    facts, learning's outcome and base container end, the outlook's running pod, headroom's
    record."""
    reads = []
    for read in (
        lambda: airflow_place(raw, POLICY),
        lambda: airflow_facts(raw, POLICY),
        lambda: scheduled_at(raw.get("status") or {}),
        lambda: outcome_of(raw, POLICY),
        lambda: base_terminated(raw),
        lambda: running_pod(raw),
    ):
        try:
            reads.append(read())
        except Exception as err:  # noqa: BLE001 - compared, not hidden
            reads.append(type(err).__name__)
    return reads, record_or_error(raw)


@pytest.mark.parametrize("raw", list(PODS.values()), ids=list(PODS))
def test_a_lean_pod_gives_the_same_record_as_a_whole_one(raw: dict[str, Any]) -> None:
    data = orjson.dumps(raw)
    assert record_or_error(decode_pod(data, HEADROOM)) == record_or_error(orjson.loads(data))


@pytest.mark.parametrize("raw", list(PODS.values()), ids=list(PODS))
def test_listeners_read_the_same_of_a_pod_decoded_for_them_as_whole(raw: dict[str, Any]) -> None:
    data = orjson.dumps(raw)
    assert what_listeners_read(decode_pod(data, LISTENERS)) == what_listeners_read(raw)


def test_the_listeners_fields_are_what_they_read_and_not_the_rest() -> None:
    data = orjson.dumps(PODS["airflow-oom-killed"])
    kept = decode_pod(data, LISTENERS)
    outcome = outcome_of(kept, POLICY)
    assert outcome is not None and outcome.oom_killed and outcome.instance.dag_id == "sales_etl"
    text = msgspec.json.encode(kept).decode()  # fields kept as their JSON (Raw) inline
    assert "restartCount" not in text and "image" not in text


def test_conditions_are_kept_as_json_until_read() -> None:
    data = orjson.dumps(PODS["airflow-scheduled"])
    status = decode_pod(data, LISTENERS)["status"]
    assert isinstance(status["conditions"], msgspec.Raw)
    assert pod_conditions(status) == orjson.loads(data)["status"]["conditions"]
    assert scheduled_at(status) == 2e9
    assert pod_conditions({"conditions": [{"type": "Ready"}]}) == [{"type": "Ready"}]


@pytest.mark.parametrize("fields", [HEADROOM, LISTENERS])
def test_tolerations_are_kept_as_json_until_a_pod_waiting_in_its_pool_reads_them(
    fields: PodFields,
) -> None:
    tolerations = [cluster_gen.TOLERATIONS["gpu"], {"key": "k", "tolerationSeconds": 5}, "odd"]
    waiting = {**PODS["pending-placed"], "spec": {**PODS["pending-placed"]["spec"]}}
    waiting["spec"]["tolerations"] = tolerations
    spec = decode_pod(orjson.dumps(waiting), fields)["spec"]
    assert isinstance(spec["tolerations"], msgspec.Raw)
    assert pod_tolerations(spec) == tolerations  # not a list of objects: parsed whole
    assert pod_record(decode_pod(orjson.dumps(waiting), fields)) == pod_record(waiting)
    assert pod_record(waiting).tolerations != ()


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
    ("spec", "containers", 0, "name"),
    ("spec", "initContainers"),
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
    ("metadata", "labels"),
    ("metadata", "labels", "kubernetes_executor"),
    ("metadata", "annotations", "dag_id"),
    ("metadata", "uid"),
    ("metadata", "creationTimestamp"),
    ("status", "conditions"),
    ("status", "conditions", 0),
    ("status", "containerStatuses"),
    ("status", "containerStatuses", 0),
    ("status", "containerStatuses", 0, "state"),
    ("status", "containerStatuses", 0, "state", "terminated", "reason"),
]
DAMAGED = {
    "Running": "bound",
    "Pending": "pending-placed",
    "airflow-scheduled": "airflow-scheduled",
    "airflow-oom-killed": "airflow-oom-killed",
}


def damaged(name: str, where: tuple[Any, ...], value: Any) -> bytes:
    """PODS[name] with `value` put at `where` (objects on the way made as needed); unchanged
    when `where` goes through a list element the pod does not have, or through a non-object."""
    raw = copy.deepcopy(PODS[name])
    target: Any = raw
    for step in where[:-1]:
        if isinstance(step, int):
            if not isinstance(target, list) or len(target) <= step:
                return orjson.dumps(raw)
            target = target[step]
        elif isinstance(target, dict):
            target = target.setdefault(step, {})
        else:
            return orjson.dumps(raw)
    last = where[-1]
    in_list = isinstance(last, int) and isinstance(target, list) and len(target) > last
    if in_list or (isinstance(last, str) and isinstance(target, dict)):
        target[last] = value
    return orjson.dumps(raw)


@settings(max_examples=200, deadline=None)
@given(where=st.sampled_from(PATHS), value=JSON, name=st.sampled_from(sorted(DAMAGED)))
def test_any_damage_to_a_pod_reads_the_same_typed_and_whole(where, value, name) -> None:  # type: ignore[no-untyped-def]
    data = damaged(DAMAGED[name], where, value)
    whole = orjson.loads(data)
    assert record_or_error(decode_pod(data, HEADROOM)) == record_or_error(whole)
    assert what_listeners_read(decode_pod(data, LISTENERS)) == what_listeners_read(whole)


def test_a_pod_headroom_cannot_read_is_named_with_its_field() -> None:
    assert record_or_error(PODS["phase-a-list"]) == (
        "Pod airflow/ph: status.phase is not a string: ['Running']"
    )
    assert pod_record(PODS["counted-on-a-node"]).counted_on == "c1"


def test_watch_events_keep_what_the_watcher_reads() -> None:
    error = orjson.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410}})
    assert decode_event("Pod", error, HEADROOM)["object"]["code"] == 410
    bookmark = orjson.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert decode_event("Pod", bookmark, HEADROOM)["object"]["metadata"]["resourceVersion"] == "9"
    added = orjson.dumps({"type": "ADDED", "object": PODS["generated-running"]})
    event = decode_event("Pod", added, HEADROOM)
    assert event["type"] == "ADDED"
    assert pod_record(event["object"]) == pod_record(PODS["generated-running"])
    assert b"env" not in msgspec.json.encode(event), "the lean decode kept a field headroom skips"


def test_a_page_keeps_its_continue_token_and_resource_version() -> None:
    meta = {"resourceVersion": "77", "continue": "token"}
    data = orjson.dumps({"kind": "PodList", "metadata": meta, "items": [PODS["bound"]]})
    page = decode_page("Pod", data, HEADROOM)
    assert page.metadata == meta
    items = list(page.items)
    assert [pod_record(item) for item in items] == [pod_record(PODS["bound"])]
    assert b"env" not in msgspec.json.encode(items), "the page's pods keep only what is read"


def test_a_page_that_is_not_a_list_of_the_expected_shape_is_parsed_whole() -> None:
    """`items` null, an item that is not an object: as the whole page has them."""
    empty = decode_page("Pod", b'{"metadata": {"resourceVersion": "5"}, "items": null}', HEADROOM)
    assert empty.metadata == {"resourceVersion": "5"} and list(empty.items) == []
    odd = decode_page(
        "Pod", b'{"metadata": {}, "items": [7, {"metadata": {"name": "p"}}]}', HEADROOM
    )
    assert list(odd.items) == [7, {"metadata": {"name": "p"}}]


def test_invalid_json_is_orjsons_error_either_way() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        decode_pod(b'{"metadata": ', HEADROOM)
    with pytest.raises(orjson.JSONDecodeError):
        decode_event("Pod", b"not json", HEADROOM)


def picture(headroom: ClusterHeadroom) -> tuple[Any, ...]:
    state = headroom.state
    reservations_free = {
        node: {r: state.free(node, r) for r in ("cpu", "memory", "pods", "nvidia.com/gpu")}
        for node in state.nodes
    }
    return dict(state.pods), dict(state.pod_requests), reservations_free


def test_a_kubectl_dump_gives_the_same_picture_and_census_however_pods_are_decoded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cluster.json"
    cluster_gen.write_dump(str(path), (3, 2, 1))
    lean = load_cluster_file(path)
    censuses = []
    listened = ClusterHeadroom(source="listened", static=True)
    censuses.append(PodCensus(lambda: POLICY))
    listened.add_pod_listener(censuses[-1])
    load_cluster_file(path, headroom=listened)
    whole = ClusterHeadroom(source="whole", static=True)
    censuses.append(PodCensus(lambda: POLICY))
    for raw in orjson.loads(path.read_bytes())["items"]:
        if raw["kind"] == "Pod":
            censuses[-1](
                "MODIFIED", f"{raw['metadata']['namespace']}/{raw['metadata']['name']}", raw
            )
    load_cluster_file(path, headroom=whole)
    assert lean.pod_fields is HEADROOM and listened.pod_fields is LISTENERS
    assert len(lean.state.pods) == 6 * 30
    assert picture(lean) == picture(listened) == picture(whole)
    counts = censuses[0].counts()
    assert counts == censuses[1].counts() and sum(counts.values()) == 6 * 30
    assert censuses[0].finished() == censuses[1].finished()
    with lean.transaction(time.monotonic()) as view:
        assert view.find_node({"node-type": "worker"}, [cluster_gen.TOLERATIONS["worker"]], {})
