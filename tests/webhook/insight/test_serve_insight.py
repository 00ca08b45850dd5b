"""`podtier serve --cluster FILE`: the snapshot's Airflow pods and each scaled pool's desired
nodes are on /metrics (the file is read before the census listens, and counted again)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from podtier.policies import DEFAULT_POLICY
from tests.conftest import Server
from tests.webhook.headroom.builders import as_list, node
from tests.webhook.insight.pods import airflow_pod


def test_serve_with_a_cluster_file_exposes_the_pod_gauges(tmp_path: Path, cert_dir: Path) -> None:
    cluster = tmp_path / "cluster.json"
    pods = [airflow_pod(f"p{i}") for i in range(5)] + [airflow_pod("r", node="w1", phase="Running")]
    cluster.write_text(json.dumps(as_list(node("w1"), *pods)))
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["pools"]["worker"]["scaling"] = {"podsPerNode": 2, "maxNodes": 10}
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(doc))
    server = Server(cert_dir, ["--cluster", str(cluster), "--policy", str(policy)])
    try:
        server.wait_ready()
        metrics = server.client.get("/metrics").text
    finally:
        server.stop()
    pending = (
        'podtier_airflow_pods{namespace="airflow",phase="Pending",pool="worker",tier="medium"}'
    )
    running = (
        'podtier_airflow_pods{namespace="airflow",phase="Running",pool="worker",tier="medium"}'
    )
    assert f"{pending} 5.0" in metrics
    assert f"{running} 1.0" in metrics
    assert 'podtier_pool_desired_nodes{pool="worker"} 3.0' in metrics  # ceil(5 / 2)
    assert "podtier_pool_utilization_ratio" not in metrics  # no live cluster, no reading
