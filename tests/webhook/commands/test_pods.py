"""`podtier pods` from a `kubectl get -o json` dump and from a live cluster, `podtier explain
--cluster FILE` showing each pool's desired nodes, and `serve`'s cleanup flag errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from podtier.policies import DEFAULT_POLICY
from tests.conftest import FIXTURES, run_podtier
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import as_list, node
from tests.webhook.insight.pods import airflow_pod, plain_pod

podtier = run_podtier


def cluster_objects() -> list[dict[str, Any]]:
    """Pending ages of 900, 600, 60 and 30 s from now (the command reads them moments later)."""
    now = time.time()
    return [
        node("w1"),
        airflow_pod("a", created=now - 600),
        airflow_pod("b", created=now - 60),
        airflow_pod("c", created=now - 30),
        airflow_pod("bound", node="w1", created=now - 900),  # Pending, pulling its image
        airflow_pod("r", node="w1", phase="Running"),
        airflow_pod(
            "h", tier="heavy", pool="compute", node="w1", phase="Succeeded", finished=now - 60
        ),
        airflow_pod(
            "f", tier="heavy", pool="compute", node="w1", phase="Failed", finished=now - 60
        ),
        plain_pod("web", phase="Running"),
    ]


@pytest.fixture
def scaled_policy_file(tmp_path: Path) -> Path:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["pools"]["worker"]["scaling"] = {"podsPerNode": 2, "minNodes": 1, "maxNodes": 5}
    path = tmp_path / "scaled.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(as_list(*cluster_objects())))
    return path


def check_report(out: dict[str, Any]) -> None:
    assert out["total"] == 7  # the web pod is not an Airflow pod
    rows = {(r["pool"], r["tier"]): r for r in out["rows"]}
    assert set(rows) == {("compute", "heavy"), ("worker", "medium")}
    worker = rows[("worker", "medium")]
    assert worker["phases"] == {
        "Pending": 4,
        "Running": 1,
        "Succeeded": 0,
        "Failed": 0,
        "Unknown": 0,
    }
    assert worker["pending_oldest_seconds"] == pytest.approx(900, abs=30)
    assert worker["pending_median_seconds"] == pytest.approx(330, abs=30)  # of 900, 600, 60, 30
    assert rows[("compute", "heavy")]["phases"]["Succeeded"] == 1
    assert rows[("compute", "heavy")]["phases"]["Failed"] == 1
    # three wait for a node (the bound one does not): ceil(3 / 2) = 2
    assert out["pools"]["worker"] == {"waiting": 3, "desired_nodes": 2}
    assert out["pools"]["compute"] == {"waiting": 0, "desired_nodes": None}


def test_pods_from_a_kubectl_dump_as_json(dump: Path, scaled_policy_file: Path) -> None:
    result = podtier(
        "pods", "--cluster", str(dump), "--policy", str(scaled_policy_file), "--output", "json"
    )
    assert result.returncode == 0, result.stderr
    check_report(json.loads(result.stdout))


def test_pods_table(dump: Path, scaled_policy_file: Path) -> None:
    result = podtier("pods", "--cluster", str(dump), "--policy", str(scaled_policy_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    worker = next(line for line in lines if "│ worker" in line and "medium" in line)
    cells = [c.strip() for c in worker.split("│") if c.strip()]
    assert cells == ["worker", "medium", "4", "1", "0", "0", "0", "15m", "5m"]
    desired = next(line for line in lines if "│ worker" in line and line.count("│") == 4)
    assert [c.strip() for c in desired.split("│") if c.strip()] == ["worker", "3", "2"]
    assert "7 Airflow pods" in result.stdout


def test_pods_from_a_live_cluster(tmp_path: Path, scaled_policy_file: Path) -> None:
    with KubeAPI() as api:
        for obj in cluster_objects():
            api.put(obj)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "test", "cluster": {"server": api.url}}],
                    "users": [{"name": "test", "user": {}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                }
            )
        )
        result = podtier(
            "pods",
            "--cluster",
            "auto",
            "--kubeconfig",
            str(kubeconfig),
            "--policy",
            str(scaled_policy_file),
            "--output",
            "json",
        )
        assert result.returncode == 0, result.stderr
        check_report(json.loads(result.stdout))
        lists = [path for method, path in api.requests if method == "GET" and "/pods" in path]
        assert len(lists) == 1  # one list, no watch


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["pods", "--cluster", "/nope.json"], "no such file", id="pods-missing-file"),
        pytest.param(
            ["serve", "--dev", "--cleanup-after", "soon"],
            '--cleanup-after "soon" is not a duration',
            id="cleanup-after-words",
        ),
        pytest.param(
            ["serve", "--dev", "--cleanup-after", "1h"],
            "--cleanup-after needs --cluster auto",
            id="cleanup-without-watch",
        ),
        pytest.param(
            ["serve", "--dev", "--cleanup-after", "1h", "--cleanup-rate", "0"],
            "--cleanup-rate 0: expected more than 0",
            id="cleanup-rate-zero",
        ),
    ],
)
def test_errors_are_one_line_exit_2(args: list[str], says: str) -> None:
    result = podtier(*args)
    assert result.returncode == 2
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_explain_with_a_cluster_file_shows_each_scaled_pools_desired_nodes(
    dump: Path, scaled_policy_file: Path
) -> None:
    review = str(next(FIXTURES.glob("a_*.json")))
    policy = ["--policy", str(scaled_policy_file)]
    out = json.loads(
        podtier("explain", review, "--cluster", str(dump), *policy, "--output", "json").stdout
    )
    assert out["desired_nodes"] == {"worker": 2}
    text = podtier("explain", review, "--cluster", str(dump), *policy).stdout
    assert "desired nodes: worker 2" in text
    no_cluster = json.loads(podtier("explain", review, *policy, "--output", "json").stdout)
    assert no_cluster["desired_nodes"] is None
