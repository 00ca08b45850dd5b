"""The report's facts from a live cluster: pods and PodMetrics from the test API server (the real
control plane has no metrics-server), and pods and TaskProfiles (through their CRD) from a real
kube-apiserver; and a file read the same way."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from podtier.webhook.report.source import SourceError, from_cluster, from_file
from tests.controlplane import ControlPlane, control_plane  # noqa: F401 - the fixture
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import as_list
from tests.webhook.headroom.test_snapshot import write_kubeconfig
from tests.webhook.insight.pods import stamp
from tests.webhook.report.builders import HOUR, NOW, priced_policy, small_cluster

POLICY = priced_policy()
CRD = Path(__file__).resolve().parents[3] / "charts" / "podtier" / "crds" / "taskprofiles.yaml"


def test_a_file_gives_the_same_facts_as_the_cluster_would(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(as_list(*small_cluster())))
    observed = from_file(str(path), POLICY)
    assert sorted(p.key for p in observed.pods) == [
        "airflow/busy",
        "airflow/done",
        "airflow/oom",
        "airflow/queued",
        "airflow/train",
    ]
    assert set(observed.metrics) == {"airflow/busy"}
    assert set(observed.profiles) == {("airflow", "etl", "load_done")}
    assert observed.latest == NOW
    assert observed.notes == []


def test_pods_and_pod_metrics_from_the_api_without_task_profiles(tmp_path: Path) -> None:
    objects = [o for o in small_cluster() if o["kind"] != "TaskProfile"]
    with KubeAPI() as api:
        api.metrics_api = True
        api.taskprofiles_api = False  # the CRD is not installed
        for obj in objects:
            api.put(obj)
        clock = iter([NOW + 5]).__next__
        observed = from_cluster(str(write_kubeconfig(tmp_path, api.url)), POLICY, clock=clock)
        lists = [path for method, path in api.requests if method == "GET"]
    assert len(observed.pods) == 5
    assert observed.metrics["airflow/busy"].cpu == 500
    assert observed.profiles == {}
    assert observed.latest == NOW + 5  # live: the clock after the lists
    assert any("no TaskProfiles (the podtier.io CRD is not installed)" in n for n in observed.notes)
    assert any(p.startswith("/api/v1/pods?") and "limit=500" in p for p in lists)  # paged
    assert any("/apis/metrics.k8s.io/v1beta1/pods" in p for p in lists)


def test_no_metrics_api_is_a_note(tmp_path: Path) -> None:
    with KubeAPI() as api:
        for obj in small_cluster()[:3]:
            api.put(obj)
        observed = from_cluster(str(write_kubeconfig(tmp_path, api.url)), POLICY)
    assert len(observed.pods) == 2


def test_an_unreachable_cluster_is_a_source_error(tmp_path: Path) -> None:
    with KubeAPI() as api:
        url = api.url
    with pytest.raises(SourceError, match=f"{url}: listing pods: "):
        from_cluster(str(write_kubeconfig(tmp_path, url)), POLICY)


# ---------------------------------------------------------------------------- real control plane


def minimal_crd() -> dict[str, Any]:
    """The TaskProfile CRD as far as the report needs it (the chart's, once it ships one)."""
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "taskprofiles.podtier.io"},
        "spec": {
            "group": "podtier.io",
            "scope": "Namespaced",
            "names": {
                "plural": "taskprofiles",
                "singular": "taskprofile",
                "kind": "TaskProfile",
                "shortNames": ["tp"],
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": open_object, "status": open_object},
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def profiles_crd(control_plane: ControlPlane) -> Iterator[None]:  # noqa: F811
    crd = yaml.safe_load(CRD.read_text()) if CRD.exists() else minimal_crd()
    control_plane.install_crd(crd)
    yield
    extensions = kubernetes.client.ApiextensionsV1Api(control_plane.client)
    extensions.delete_custom_resource_definition(crd["metadata"]["name"])


def test_pods_and_task_profiles_from_a_real_api_server_and_its_kubectl_dump(
    control_plane: ControlPlane,  # noqa: F811
    profiles_crd: None,
    tmp_path: Path,
) -> None:
    control_plane.reset()
    control_plane.ensure_namespace("airflow")
    control_plane.add_node(
        "w1",
        labels={"node-type": "worker"},
        taints=[{"key": "dedicated", "value": "worker", "effect": "NoSchedule"}],
    )
    core = control_plane.core
    pods = [
        o
        for o in small_cluster()
        if o["kind"] == "Pod" and o["metadata"]["name"] in ("done", "busy")
    ]
    for pod in pods:
        body = {
            **pod,
            "metadata": {k: v for k, v in pod["metadata"].items() if k != "creationTimestamp"},
        }
        body["spec"] = {**pod["spec"], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}
        body["spec"].pop("nodeName")
        body.pop("status")
        core.create_namespaced_pod("airflow", body)
    control_plane.wait_bound("airflow", ["done", "busy"])
    # what a kubelet writes: done ran 1 h and finished an hour ago; busy runs
    finished = time.time() - HOUR
    for name, state, phase in (
        (
            "done",
            {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": stamp(finished)}},
            "Succeeded",
        ),
        ("busy", {"running": {"startedAt": stamp(finished)}}, "Running"),
    ):
        status = {
            "phase": phase,
            "startTime": stamp(finished - HOUR if name == "done" else finished),
            "containerStatuses": [
                {
                    "name": "base",
                    "image": "apache/airflow",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        core.patch_namespaced_pod_status(name, "airflow", {"status": status})
    profile = next(o for o in small_cluster() if o["kind"] == "TaskProfile")
    custom = kubernetes.client.CustomObjectsApi(control_plane.client)
    custom.create_namespaced_custom_object(
        "podtier.io", "v1alpha1", "airflow", "taskprofiles", profile
    )

    observed = from_cluster(str(control_plane.kubeconfig), POLICY)
    check_observed(observed, finished)
    assert any("no metrics.k8s.io API" in n for n in observed.notes)

    # the same objects through a real `kubectl get ... -o json` dump, read anywhere else
    if shutil.which("kubectl") is not None:
        dump = tmp_path / "dump.json"
        command = ["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "get"]
        command += ["nodes,pods,taskprofiles", "-A", "-o", "json"]
        with dump.open("wb") as out:
            subprocess.run(command, stdout=out, check=True, timeout=60)
        from_dump = from_file(str(dump), POLICY)
        check_observed(from_dump, finished)
        assert sorted(from_dump.pods) == sorted(observed.pods)
        assert from_dump.profiles == observed.profiles


def check_observed(observed: Any, finished: float) -> None:
    by_name = {p.key: p for p in observed.pods}
    assert set(by_name) == {"airflow/done", "airflow/busy"}
    done = by_name["airflow/done"]
    assert done.finished == float(int(finished))
    assert done.started == float(int(finished)) - HOUR
    assert done.bound is not None and done.bound >= done.created  # the scheduler's binding
    assert done.task == ("airflow", "etl", "load_done")
    assert set(observed.profiles) == {("airflow", "etl", "load_done")}
    assert observed.profiles[("airflow", "etl", "load_done")].recommended_tier == "light"
