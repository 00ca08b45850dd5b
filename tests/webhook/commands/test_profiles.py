"""`podtier profiles` and `explain --cluster FILE` read TaskProfiles: from a dump (the same file
headroom reads) and from a cluster; unreadable profiles are left out and said on stderr; no
CRD is a clear error."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import yaml

from podtier.webhook.learning.profiles import profile_object
from tests.conftest import run_podtier
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import as_list, node
from tests.webhook.headroom.test_snapshot import write_kubeconfig
from tests.webhook.learning.test_profiles import PROFILE

GOOD = profile_object(replace(PROFILE, resource_version=""))


def hostile() -> dict:
    obj = json.loads(json.dumps(GOOD))
    obj["metadata"]["name"] = "forged"
    return obj


def dump(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(as_list(node("w1"), GOOD, hostile()), indent=4, sort_keys=True))
    return path


def test_profiles_from_a_dump_as_json(tmp_path: Path) -> None:
    done = run_podtier("profiles", "--cluster", str(dump(tmp_path)), "--output", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["profiles"]
    assert rows == [
        {
            "namespace": "airflow",
            "dag_id": "sales_etl",
            "task_id": "extract_orders",
            "name": PROFILE.name,
            "runs": 7,
            "oom_kills": 2,
            "memory_peak_bytes": 3 * 2**30,
            "cpu_p95_milli": 850,
            "requested": {"cpu_milli": 1000, "memory_bytes": 2 * 2**30},
            "tier": "medium",
            "recommended_tier": "heavy",
            # per resource, under the default policy: cpu p95 850m, peak 3Gi x 1.15 and x 1.3
            "recommendation": {
                "tier": "medium",
                "cpu_milli": 850,
                "memory_bytes": 3536 * 2**20,
                "memory_limit_bytes": 4000 * 2**20,
                "why": "7 runs: cpu p95 850m, memory peak 3Gi",
            },
            "updated_at": "2026-11-26T05:05:00Z",
        }
    ]
    assert 'ignored TaskProfile airflow/forged: metadata.name: "forged"' in done.stderr


def test_profiles_as_a_table(tmp_path: Path) -> None:
    done = run_podtier("profiles", "--cluster", str(dump(tmp_path)))
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "sales_etl" in line)
    for cell in ("extract_orders", "7", "2", "3Gi / 2Gi", "850m / 1", "medium", "heavy", "850m /"):
        assert cell in row
    assert "1 tasks; 1 unreadable profiles left out" in done.stdout


def test_profiles_from_a_cluster(tmp_path: Path) -> None:
    with KubeAPI() as api:
        api.put(GOOD)
        kubeconfig = write_kubeconfig(tmp_path, api.url)
        done = run_podtier("profiles", "--kubeconfig", str(kubeconfig), "--output", "json")
        assert done.returncode == 0, done.stderr
        assert [r["task_id"] for r in json.loads(done.stdout)["profiles"]] == ["extract_orders"]
        api.taskprofiles_api = False
        done = run_podtier("profiles", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 2
    assert "the TaskProfile CRD is not installed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = run_podtier("profiles", "--cluster", str(tmp_path / "nope.json"))
    assert done.returncode == 2 and "no such file" in done.stderr


def test_explain_reads_the_profiles_of_the_dump(tmp_path: Path) -> None:
    """The dump's profile says try 2 of the run was OOMKilled at 4Gi: explaining try 3 shows
    the raise, and the tier recommended from the profile (cpu p95 850m, memory peak 3Gi:
    medium)."""
    retry = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "extract-try-2",
            "namespace": "airflow",
            "labels": {"kubernetes_executor": "True", "dag_id": "sales_etl"},
            "annotations": {
                "dag_id": "sales_etl",
                "task_id": "extract_orders",
                "run_id": PROFILE.last_runs[0].run_id,
                "try_number": "3",
            },
        },
        "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2"}]},
    }
    pod = tmp_path / "pod.yaml"
    pod.write_text(yaml.safe_dump(retry))
    cluster = dump(tmp_path)
    done = run_podtier("explain", str(pod), "--cluster", str(cluster), "--output", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tier"] == "heavy"
    assert "previous try OOMKilled at limit 4Gi" in result["reason"]
    assert result["escalated_memory"] == "4916Mi"
    assert result["recommended_tier"] == "medium"
    # per resource (the default sizing), next to what the pod asked for; the raise wins
    assert result["recommendation"] == {
        "cpu": "850m",
        "memory": "3536Mi",
        "memory_limit": "4000Mi",
        "applied": False,
    }
    text = run_podtier("explain", str(pod), "--cluster", str(cluster)).stdout
    assert "learned: memory raised to 4916Mi after an OOM kill" in text
    assert (
        "learned: recommended cpu 850m, memory 3536Mi (limit 4000Mi) in tier medium; the pod "
        "asked for cpu -, memory - (limit -); not applied" in text
    )
    without = run_podtier("explain", str(pod), "--output", "json")
    assert json.loads(without.stdout)["tier"] == "medium"
