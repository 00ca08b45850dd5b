"""The test API server, driven by the official `kubernetes` client as podtier drives it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.kubeapi import KubeAPI


def node(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}},
    }


def pod(
    name: str,
    namespace: str = "airflow",
    node_name: str = "",
    labels: dict[str, str] | None = None,
    phase: str = "Pending",
) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"nodeName": node_name, "containers": [{"name": "base", "image": "x"}]},
        "status": {"phase": phase},
    }


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    server = KubeAPI().start()
    yield server
    server.stop()


@pytest.fixture
def core(api: KubeAPI) -> client.CoreV1Api:
    return client.CoreV1Api(client.ApiClient(client.Configuration(host=api.url)))


def raw(response: Any) -> Any:
    return json.loads(response.data)


def test_create_get_list_delete_pods(api: KubeAPI, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("airflow", pod("a"))
    created = core.create_namespaced_pod("airflow", pod("b", labels={"app": "x"}))
    assert created.metadata.uid and created.metadata.resource_version
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("airflow", pod("a"))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"
    assert core.read_namespaced_pod("b", "airflow").metadata.labels == {"app": "x"}
    names = [p.metadata.name for p in core.list_namespaced_pod("airflow").items]
    assert names == ["a", "b"]
    core.delete_namespaced_pod("a", "airflow")
    assert api.delete_count == 1
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("a", "airflow")
    assert err.value.status == 404


def test_generate_name_gives_each_pod_its_own_name(core: client.CoreV1Api) -> None:
    body = pod("")
    body["metadata"] = {"generateName": "task-", "namespace": "airflow"}
    first = core.create_namespaced_pod("airflow", body).metadata.name
    second = core.create_namespaced_pod("airflow", body).metadata.name
    assert first.startswith("task-") and second.startswith("task-") and first != second


def test_all_namespace_list_is_chunked_with_a_consistent_resource_version(
    api: KubeAPI, core: client.CoreV1Api
) -> None:
    for i in range(7):
        api.put(pod(f"p{i}", namespace=f"ns{i % 2}"))
    first = raw(core.list_pod_for_all_namespaces(limit=3, _preload_content=False))
    api.put(pod("late", namespace="ns0"))  # changes after the first page stay out of this list
    names = [p["metadata"]["name"] for p in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = raw(
            core.list_pod_for_all_namespaces(limit=3, _continue=token, _preload_content=False)
        )
        assert page["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        names += [p["metadata"]["name"] for p in page["items"]]
        token = page["metadata"].get("continue")
    assert sorted(names) == [f"p{i}" for i in range(7)]


def test_continue_token_expires_after_compaction(api: KubeAPI, core: client.CoreV1Api) -> None:
    for i in range(4):
        api.put(pod(f"p{i}"))
    first = raw(core.list_pod_for_all_namespaces(limit=2, _preload_content=False))
    api.compact()
    with pytest.raises(ApiException) as err:
        core.list_pod_for_all_namespaces(limit=2, _continue=first["metadata"]["continue"])
    assert err.value.status == 410


@pytest.mark.parametrize(
    ("label_selector", "field_selector", "expected"),
    [
        pytest.param("app=x", "", ["a", "c"], id="label-equals"),
        pytest.param("app!=x", "", ["b", "d"], id="label-not-equals"),
        pytest.param("app in (x,y)", "", ["a", "b", "c"], id="label-in"),
        pytest.param("!app", "", ["d"], id="label-absent"),
        pytest.param("", "spec.nodeName=n1", ["a", "b"], id="field-node"),
        pytest.param("", "spec.nodeName=", ["d"], id="field-unbound"),
        pytest.param("app=x", "metadata.name!=a", ["c"], id="both"),
        pytest.param("", "status.phase=Running", ["a"], id="field-phase"),
    ],
)
def test_selectors(
    api: KubeAPI,
    core: client.CoreV1Api,
    label_selector: str,
    field_selector: str,
    expected: list[str],
) -> None:
    api.put(pod("a", node_name="n1", labels={"app": "x"}, phase="Running"))
    api.put(pod("b", node_name="n1", labels={"app": "y"}))
    api.put(pod("c", node_name="n2", labels={"app": "x"}))
    api.put(pod("d"))
    listed = core.list_pod_for_all_namespaces(
        label_selector=label_selector, field_selector=field_selector
    )
    assert [p.metadata.name for p in listed.items] == expected


def test_update_with_a_stale_resource_version_conflicts(core: client.CoreV1Api) -> None:
    client_api = client.CoordinationV1Api(core.api_client)
    lease = {"metadata": {"name": "cleanup"}, "spec": {"holderIdentity": "a"}}
    created = client_api.create_namespaced_lease("podtier", lease)
    created.spec.holder_identity = "b"
    updated = client_api.replace_namespaced_lease("cleanup", "podtier", created)
    assert updated.spec.holder_identity == "b"
    created.spec.holder_identity = "c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as err:
        client_api.replace_namespaced_lease("cleanup", "podtier", created)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"


def test_patches_the_client_sends(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("podtier", {"metadata": {"name": "tls"}, "data": {"a": "eA=="}})
    core.patch_namespaced_secret("tls", "podtier", {"data": {"b": "eQ=="}})  # strategic merge
    core.patch_namespaced_secret(
        "tls", "podtier", [{"op": "remove", "path": "/data/a"}]
    )  # JSON patch
    assert core.read_namespaced_secret("tls", "podtier").data == {"b": "eQ=="}

    admission = client.AdmissionregistrationV1Api(core.api_client)
    admission.create_mutating_webhook_configuration(
        {
            "metadata": {"name": "podtier"},
            "webhooks": [
                {
                    "name": "mutate.podtier.io",
                    "clientConfig": {"caBundle": ""},
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                }
            ],
        }
    )
    admission.patch_mutating_webhook_configuration(
        "podtier",
        {"webhooks": [{"name": "mutate.podtier.io", "clientConfig": {"caBundle": "Q0E="}}]},
    )
    hooks = admission.read_mutating_webhook_configuration("podtier").webhooks
    assert [(h.name, h.client_config.ca_bundle, h.side_effects) for h in hooks] == [
        ("mutate.podtier.io", "Q0E=", "None")
    ]


def test_namespaces_and_validating_webhooks_round_trip(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "airflow", "labels": {"team": "data"}}})
    assert [n.metadata.name for n in core.list_namespace(label_selector="team=data").items] == [
        "airflow"
    ]
    admission = client.AdmissionregistrationV1Api(core.api_client)
    admission.create_validating_webhook_configuration(
        {"metadata": {"name": "podtier"}, "webhooks": []}
    )
    admission.delete_validating_webhook_configuration("podtier")
    assert admission.list_validating_webhook_configuration().items == []


def test_delete_preconditions_and_collection(api: KubeAPI, core: client.CoreV1Api) -> None:
    for name in ("a", "b", "c"):
        api.put(pod(name, labels={"done": "true" if name != "c" else "false"}))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_pod(
            "a",
            "airflow",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1")),
        )
    assert err.value.status == 409
    core.delete_collection_namespaced_pod("airflow", label_selector="done=true")
    assert [p.metadata.name for p in core.list_namespaced_pod("airflow").items] == ["c"]
    assert api.delete_count == 2


def test_delete_rate_limit_answers_429(api: KubeAPI) -> None:
    config = client.Configuration(host=api.url)
    config.retries = False  # urllib3 would otherwise wait out Retry-After and try again
    core = client.CoreV1Api(client.ApiClient(config))
    for name in ("a", "b"):
        api.put(pod(name))
    api.delete_rate = 1
    core.delete_namespaced_pod("a", "airflow")
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_pod("b", "airflow")
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "1"


def test_dry_run_changes_nothing(api: KubeAPI, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("airflow", pod("a"), dry_run="All")
    assert core.list_namespaced_pod("airflow").items == []


def watch_events(core: client.CoreV1Api, **kwargs: Any) -> list[tuple[str, str]]:
    stream = watch.Watch().stream(core.list_pod_for_all_namespaces, **kwargs)
    return [(e["type"], e["raw_object"]["metadata"].get("name", "")) for e in stream]


def test_watch_streams_changes_after_a_resource_version(
    api: KubeAPI, core: client.CoreV1Api
) -> None:
    api.put(pod("before"))
    rv = core.list_pod_for_all_namespaces().metadata.resource_version
    api.put(pod("a"))
    api.put(pod("a", node_name="n1"))
    api.remove("Pod", "before", "airflow")
    api.put(pod("b", labels={"app": "other"}))
    assert watch_events(core, resource_version=rv, timeout_seconds=1) == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "before"),
        ("ADDED", "b"),
    ]


def test_watch_without_resource_version_starts_with_current_objects(
    api: KubeAPI, core: client.CoreV1Api
) -> None:
    api.put(pod("a"))
    assert watch_events(core, timeout_seconds=1) == [("ADDED", "a")]


def test_filtered_watch_sees_objects_leaving_the_selection_as_deleted(
    api: KubeAPI, core: client.CoreV1Api
) -> None:
    rv = str(api.resource_version)
    api.put(pod("a", node_name="n1"))
    api.put(pod("a", node_name="n2"))
    assert watch_events(
        core, resource_version=rv, field_selector="spec.nodeName=n1", timeout_seconds=1
    ) == [("ADDED", "a"), ("DELETED", "a")]


def test_watch_on_a_compacted_resource_version_gets_410(
    api: KubeAPI, core: client.CoreV1Api
) -> None:
    rv = str(api.resource_version)
    api.put(pod("a"))
    api.compact()
    response = core.list_pod_for_all_namespaces(
        watch=True, resource_version=rv, _preload_content=False
    )
    events = [json.loads(line) for line in response.data.splitlines()]
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]
    with pytest.raises(ApiException) as err:  # the client's own Watch turns it into an error
        watch_events(core, resource_version=rv)
    assert err.value.status == 410


def stream_lines(
    core: client.CoreV1Api, **kwargs: Any
) -> tuple[list[dict[str, Any]], threading.Thread]:
    """Read a raw watch in a thread, as podtier's tracker does; returns the growing event list."""
    events: list[dict[str, Any]] = []
    response = core.list_pod_for_all_namespaces(watch=True, _preload_content=False, **kwargs)

    def read() -> None:
        buffer = b""
        try:
            for chunk in response.stream(4096):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                events.extend(json.loads(line) for line in lines if line)
        except Exception:  # noqa: BLE001 - the stream being cut is what tests look at
            events.append({"type": "CUT"})
        events.append({"type": "END"})

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return events, thread


def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_bookmarks_only_for_watches_that_ask(api: KubeAPI, core: client.CoreV1Api) -> None:
    rv = str(api.resource_version)
    with_bookmarks, t1 = stream_lines(
        core, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=1
    )
    without, t2 = stream_lines(core, resource_version=rv, timeout_seconds=1)
    wait_for(lambda: api.open_watches == 2)
    api.put(pod("a"))
    api.bookmark()
    t1.join()
    t2.join()
    assert [e["type"] for e in with_bookmarks] == ["ADDED", "BOOKMARK", "END"]
    assert with_bookmarks[1]["object"]["metadata"]["resourceVersion"] == str(api.resource_version)
    assert [e["type"] for e in without] == ["ADDED", "END"]


def test_open_watch_gets_410_when_history_is_compacted(
    api: KubeAPI, core: client.CoreV1Api
) -> None:
    events, thread = stream_lines(
        core, resource_version=str(api.resource_version), timeout_seconds=5
    )
    wait_for(lambda: api.open_watches == 1)
    api.compact()
    thread.join()
    assert [e["type"] for e in events] == ["ERROR", "END"]
    assert events[0]["object"]["code"] == 410


def test_drop_watches_ends_open_streams(api: KubeAPI, core: client.CoreV1Api) -> None:
    events, thread = stream_lines(
        core, resource_version=str(api.resource_version), timeout_seconds=30
    )
    wait_for(lambda: api.open_watches == 1)
    api.drop_watches()
    thread.join(timeout=3)
    assert not thread.is_alive() and events[-1]["type"] == "END"


def test_down_refuses_connections_and_up_serves_the_same_state(api: KubeAPI) -> None:
    api.put(pod("a"))
    config = client.Configuration(host=api.url)
    config.retries = 0
    core = client.CoreV1Api(client.ApiClient(config))
    events, thread = stream_lines(
        core, resource_version=str(api.resource_version), timeout_seconds=30
    )
    wait_for(lambda: api.open_watches == 1)
    api.down()
    thread.join(timeout=3)
    assert not thread.is_alive()
    with pytest.raises(Exception, match="(?i)refused|Max retries"):
        core.list_pod_for_all_namespaces(_request_timeout=2)
    api.up()
    assert [p.metadata.name for p in core.list_pod_for_all_namespaces().items] == ["a"]


def test_discovery_lists_the_served_resources(core: client.CoreV1Api) -> None:
    assert client.CoreApi(core.api_client).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(core.api_client).get_api_versions().groups
    assert {g.name for g in groups} == {
        "admissionregistration.k8s.io",
        "coordination.k8s.io",
        "podtier.io",  # as if podtier's CRD were registered
    }
    names = {r.name for r in core.get_api_resources().resources}
    assert {"nodes", "pods", "namespaces", "secrets"} <= names
