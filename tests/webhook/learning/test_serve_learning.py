"""`podtier serve --learning`: the flags' mistakes are one-line usage errors; a cluster file's
profiles are read (no writer); without the CRD the pod is still admitted, decided by the rules,
and the reason says why."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from pathlib import Path

import jsonpatch
import pytest

from podtier.webhook.learning.profiles import profile_object
from tests.conftest import Server, review_of, run_podtier
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import as_list, node
from tests.webhook.headroom.test_snapshot import write_kubeconfig
from tests.webhook.learning.test_profiles import PROFILE


def retry_pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "extract-try-3",
            "namespace": "airflow",
            "labels": {"kubernetes_executor": "True"},
            "annotations": {
                "dag_id": "sales_etl",
                "task_id": "extract_orders",
                "run_id": PROFILE.last_runs[0].run_id,
                "try_number": "3",
            },
        },
        "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]},
    }


def patched_annotations(response: dict) -> dict[str, str]:
    patch = json.loads(base64.b64decode(response["patch"]))
    annotations: dict[str, str] = jsonpatch.apply_patch(retry_pod(), patch)["metadata"][
        "annotations"
    ]
    return annotations


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--learning"], "--learning needs --cluster auto", id="no-cluster"),
        pytest.param(
            ["--usage-prometheus", "http://p:9090"], "needs --learning", id="prometheus-alone"
        ),
        pytest.param(
            ["--cluster", "auto", "--learning", "--usage-prometheus", "p:9090"],
            "expected an http:// or https:// URL",
            id="prometheus-not-a-url",
        ),
    ],
)
def test_flag_mistakes_are_usage_errors(args: list[str], message: str, cert_dir: Path) -> None:
    done = run_podtier("serve", "--cert-dir", str(cert_dir), *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_serve_reads_the_profiles_of_a_cluster_file(tmp_path: Path, cert_dir: Path) -> None:
    cluster = tmp_path / "cluster.json"
    good = profile_object(replace(PROFILE, resource_version=""))
    cluster.write_text(json.dumps(as_list(node("w1"), good)))
    server = Server(cert_dir, ["--cluster", str(cluster), "--learning"])
    try:
        server.wait_ready()
        response = server.post("/mutate", review_of(retry_pod())).json()["response"]
        metrics = server.client.get("/metrics").text
        logs = server.logs()
    finally:
        server.stop()
    decided = json.loads(next(line for line in logs.splitlines() if "mutate patched" in line))
    assert (decided["oom_killed_at_bytes"], decided["memory_raised_to_bytes"]) == (
        4 * 2**30,
        4916 * 2**20,
    )
    notes = patched_annotations(response)
    assert notes["podtier.io/tier"] == "heavy"
    assert "previous try OOMKilled at limit 4Gi" in notes["podtier.io/reason"]
    assert 'podtier_oom_escalations_total{tier="heavy"} 1.0' in metrics
    assert 'podtier_profiles{state="valid"} 1.0' in metrics
    # the task's recommendation (cpu p95 850m, peak 3Gi x 1.15 = 3536Mi), not applied: it
    # would free 1.15 cores and 560Mi of heavy's requests (2 cores, 4Gi)
    assert notes["podtier.io/recommended-cpu"] == "850m"
    freed = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("podtier_rightsizing_")
        and '{direction="freed",mode="recommended"}' in line
    }
    assert freed == {
        "podtier_rightsizing_cpu_cores_total": 1.15,
        "podtier_rightsizing_memory_bytes_total": 560 * 2**20,
    }


def test_without_the_crd_pods_are_decided_by_the_rules_and_told_why(
    tmp_path: Path, cert_dir: Path
) -> None:
    with KubeAPI() as api:
        api.taskprofiles_api = False
        api.put(node("w1"))
        kubeconfig = write_kubeconfig(tmp_path, api.url)
        args = ["--cluster", "auto", "--kubeconfig", str(kubeconfig), "--learning"]
        server = Server(cert_dir, args, env={"POD_NAME": "podtier-a", "POD_NAMESPACE": "podtier"})
        try:
            server.wait_ready()
            deadline = time.monotonic() + 20
            while True:
                response = server.post("/mutate", review_of(retry_pod())).json()["response"]
                reason = patched_annotations(response)["podtier.io/reason"]
                if "CRD installed" in reason or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            server.stop()
    assert response["allowed"] is True
    assert patched_annotations(response)["podtier.io/tier"] == "medium"
    assert "learned profiles not used" in reason and "TaskProfile CRD installed" in reason
