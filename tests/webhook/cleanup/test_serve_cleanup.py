"""`podtier serve --cluster auto --cleanup-after 1h` end to end: a real server process on the
test API server takes the Lease as $POD_NAME, deletes the old finished worker pods, keeps the
rest, and its /metrics shows the pod gauges and the deletions."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from tests.conftest import Server
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import node
from tests.webhook.headroom.feeds import wait_for
from tests.webhook.insight.pods import airflow_pod


def test_serve_cleans_up_as_the_lease_holder(tmp_path: Path, cert_dir: Path) -> None:
    with KubeAPI() as api:
        api.put(node("w1"))
        long_ago = time.time() - 7200
        for i in range(5):
            api.put(airflow_pod(f"old-{i}", phase="Succeeded", node="w1", finished=long_ago))
        api.put(airflow_pod("young", phase="Succeeded", node="w1", finished=time.time()))
        api.put(airflow_pod("waiting"))
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
        args = ["--cluster", "auto", "--kubeconfig", str(kubeconfig), "--cleanup-after", "1h"]
        env = {"POD_NAME": "podtier-7d9f-abcde", "POD_NAMESPACE": "podtier"}
        server = Server(cert_dir, args, env=env)
        try:
            server.wait_ready()
            wait_for(lambda: api.delete_count == 5, timeout=30, what=f"deletes\n{server.logs()}")
            lease = api.get("Lease", "podtier-cleanup", "podtier")
            assert lease is not None
            assert lease["spec"]["holderIdentity"] == "podtier-7d9f-abcde"
            assert {p["metadata"]["name"] for p in api.objects("Pod")} == {"young", "waiting"}
            metrics = server.client.get("/metrics").text
            assert 'podtier_cleanup_deleted_total{phase="Succeeded"} 5.0' in metrics
            assert (
                'podtier_airflow_pods{namespace="airflow",phase="Pending",pool="worker",'
                'tier="medium"} 1.0' in metrics
            )
            assert '"pod": "old-0"' in server.logs() or '"pod":"old-0"' in server.logs()
        finally:
            server.stop()
