"""Learning on a real control plane (kube-apiserver, kube-scheduler, etcd from
`$KUBEBUILDER_ASSETS`), with the chart's TaskProfile CRD registered for real and `podtier serve
--cluster auto --learning` as the cluster's admission webhook:

1. a worker pod's `base` container is written OOMKilled through `pods/status`, as a kubelet
   would, and Airflow deletes the pod at once;
2. the Airflow retry (the same task instance, `try_number` 2) is created through the API server
   and comes back with more memory and the reason;
3. each further try after another kill gets more again, up to the policy's memory ceiling
   and no further;
4. the profiles survive a podtier restart (the new process answers the same);
5. two replicas give the same answer (only the Lease holder writes).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core.matching import airflow_label_value
from podtier.webhook.core.profile import task_key
from podtier.webhook.learning.names import profile_name
from tests.conftest import ROOT, Server, review_of, run_podtier
from tests.controlplane import ControlPlane, control_plane, wait  # noqa: F401
from tests.webhook.learning.promserver import (
    PROMETHEUS,
    SKIP_REASON,
    PodUsageExporter,
    ScriptedPod,
    prometheus_server,
)

NS = "airflow"
CRD = ROOT / "charts" / "podtier" / "crds" / "taskprofiles.yaml"
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}
COMPUTE_TAINT = {"key": "workload", "value": "heavy", "effect": "NoSchedule"}
RUN_ID = "scheduled__2026-11-26T05:00:00+00:00"
RUN_LABEL = airflow_label_value(RUN_ID)
MI = 2**20


class Cluster:
    def __init__(self, plane: ControlPlane, directory: Path) -> None:
        self.plane = plane
        self.directory = directory
        self.profiles = kubernetes.client.CustomObjectsApi(plane.client)
        cert_dir = directory / "certs"
        made = run_podtier("certs", "generate", "--out", str(cert_dir), "--ip", "127.0.0.1")
        assert made.returncode == 0, made.stderr
        self.cert_dir = cert_dir
        doc = yaml.safe_load(DEFAULT_POLICY.read_text())
        doc["spec"]["ceilings"]["memory"] = "10Gi"
        self.policy = directory / "policy.yaml"
        self.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.servers: list[Server] = []
        # every replica reads the same key, as from the chart's Secret: a raise sealed by one
        # verifies on the others and after a restart
        self.escalation_key = directory / "escalation.key"
        self.escalation_key.write_bytes(b"learning-test-key-" * 3)

    def start_podtier(self, identity: str, *extra: str) -> Server:
        args = ["--cluster", "auto", "--kubeconfig", str(self.plane.kubeconfig)]
        args += ["--learning", "--policy", str(self.policy)]
        args += ["--escalation-key", str(self.escalation_key), *extra]
        env = {"POD_NAME": identity, "POD_NAMESPACE": "podtier"}
        server = Server(self.cert_dir, args, env=env)
        self.servers.append(server)
        server.wait_ready()
        wait("podtier ready", lambda: server.client.get("/readyz").status_code == 200)
        return server

    def serve_webhooks_from(self, server: Server) -> None:
        admission = self.plane.admission
        admission.delete_collection_mutating_webhook_configuration()
        admission.delete_collection_validating_webhook_configuration()
        self.plane.register_webhooks(server.url, (self.cert_dir / "ca.crt").read_bytes(), [NS])
        self.plane.wait_webhooks_active(NS)

    def profile(self, task: str) -> dict[str, Any] | None:
        name = profile_name(task_key(NS, "sales_etl", task))
        try:
            found: dict[str, Any] = self.profiles.get_namespaced_custom_object(
                "podtier.io", "v1alpha1", NS, "taskprofiles", name
            )
        except kubernetes.client.ApiException as err:
            if err.status == 404:
                return None
            raise
        return found

    def run_and_kill(
        self, name: str, task: str, try_number: int, between: Callable[[], None] = lambda: None
    ) -> dict[str, Any]:
        """Create the worker pod through the API server (podtier admits it), let the scheduler
        bind it, write Running then OOMKilled as the kubelet would (`between` runs while it is
        Running), and delete it at once as Airflow does. Returns the pod as admitted."""
        core = self.plane.core
        core.create_namespaced_pod(NS, worker_pod(name, task, try_number))
        self.plane.wait_bound(NS, [name])
        admitted = self.plane.set_pod_status(NS, name, "Running")
        between()
        self.plane.set_pod_status(NS, name, "Failed", exit_code=137, reason="OOMKilled")
        core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        return admitted

    def wait_oom_kills(self, task: str, count: int) -> dict[str, Any]:
        def written() -> dict[str, Any] | None:
            profile = self.profile(task)
            return profile if profile and profile["status"]["oomKills"] >= count else None

        found: dict[str, Any] = wait(f"profile of {task} with {count} OOM kills", written)
        return found


def worker_pod(name: str, task: str, try_number: int) -> dict[str, Any]:
    """A KubernetesExecutor worker pod as Airflow makes it for a try of a task instance (the
    raw ids in annotations, their label forms in labels; no resources: the tier sizes it)."""
    identity = {"dag_id": "sales_etl", "task_id": task, "try_number": str(try_number)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes_executor": "True",
                "airflow-worker": "1",
                **identity,
                "run_id": RUN_LABEL,
            },
            "annotations": {**identity, "run_id": RUN_ID},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "base",
                    "image": "apache/airflow:3.3.2",
                    "args": ["airflow", "tasks", "run", "sales_etl", task, RUN_ID],
                }
            ],
        },
    }


def base_memory(pod: Any) -> tuple[str, str]:
    resources = pod["spec"]["containers"][0]["resources"]
    return resources["requests"]["memory"], resources["limits"]["memory"]


@pytest.fixture(scope="module")
def cluster(
    control_plane: ControlPlane,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    plane = control_plane
    plane.reset()
    for namespace in (NS, "podtier"):
        plane.ensure_namespace(namespace)
    plane.add_node("worker-0", {"node-type": "worker"}, [WORKER_TAINT], cpu="16", memory="64Gi")
    plane.add_node(
        "compute-0", {"node-type": "compute-optimized"}, [COMPUTE_TAINT], cpu="8", memory="64Gi"
    )
    plane.install_crd(yaml.safe_load(CRD.read_text()))
    cluster = Cluster(plane, tmp_path_factory.mktemp("learning"))
    try:
        yield cluster
    finally:
        for server in cluster.servers:
            server.stop()
        plane.reset()


def test_each_oom_kill_raises_the_retry_up_to_the_ceiling_and_no_further(cluster: Cluster) -> None:
    podtier = cluster.start_podtier("podtier-a")
    cluster.serve_webhooks_from(podtier)

    first = cluster.run_and_kill("extract-try-1", "extract_orders", 1)
    assert first["metadata"]["annotations"]["podtier.io/tier"] == "medium"
    assert base_memory(first) == ("2Gi", "4Gi")
    profile = cluster.wait_oom_kills("extract_orders", 1)
    assert profile["status"]["lastRuns"][-1]["reason"] == "OOMKilled"
    assert profile["status"]["lastRuns"][-1]["memoryLimitBytes"] == 4 * 2**30

    expected = [  # (tier, memory request, memory limit, the reason says)
        ("heavy", "4Gi", "8Gi", "previous try OOMKilled at limit 4Gi"),
        ("heavy", "4Gi", "9831Mi", "previous try OOMKilled at limit 8Gi"),
        ("heavy", "4Gi", "10Gi", "capped at the ceiling 10Gi"),
        ("heavy", "4Gi", "10Gi", "capped at the ceiling 10Gi"),
    ]
    for try_number, (tier, request, limit, why) in enumerate(expected, start=2):
        pod = cluster.run_and_kill(f"extract-try-{try_number}", "extract_orders", try_number)
        notes = pod["metadata"]["annotations"]
        assert (notes["podtier.io/tier"], *base_memory(pod)) == (tier, request, limit), notes
        assert why in notes["podtier.io/reason"]
        cluster.wait_oom_kills("extract_orders", try_number)

    metrics = podtier.client.get("/metrics").text
    assert 'podtier_oom_escalations_total{tier="heavy"} 4.0' in metrics
    profile = cluster.profile("extract_orders")
    assert profile is not None
    assert (profile["status"]["runs"], profile["status"]["oomKills"]) == (5, 5)


def test_profiles_survive_a_restart_and_two_replicas_agree(cluster: Cluster) -> None:
    for server in cluster.servers:
        server.stop()
    cluster.servers.clear()
    podtier = cluster.start_podtier("podtier-a")
    cluster.serve_webhooks_from(podtier)
    cluster.run_and_kill("load-try-1", "load_orders", 1)
    cluster.wait_oom_kills("load_orders", 1)

    def retry_answer(server: Server) -> dict[str, Any]:
        review = review_of(worker_pod("load-try-2", "load_orders", 2), uid="same")
        review["request"]["namespace"] = NS
        response: dict[str, Any] = server.post("/mutate", review).json()["response"]
        return response

    before = retry_answer(podtier)
    assert "patch" in before

    podtier.stop()  # a restart: a new process, nothing kept but what is in the API server
    restarted = cluster.start_podtier("podtier-a")
    second = cluster.start_podtier("podtier-b")
    stored = len(
        cluster.profiles.list_cluster_custom_object("podtier.io", "v1alpha1", "taskprofiles")[
            "items"
        ]
    )
    listed = f'podtier_profiles{{state="valid"}} {stored:.1f}'
    for server in (restarted, second):
        wait("profiles listed", lambda s=server: listed in s.client.get("/metrics").text)
    assert retry_answer(restarted) == before
    assert retry_answer(second) == before

    # through the API server, from the restarted replica: the retry is raised (a dry run)
    cluster.serve_webhooks_from(restarted)
    pod = cluster.plane.core.create_namespaced_pod(
        NS, worker_pod("load-try-2", "load_orders", 2), dry_run="All"
    )
    assert pod.metadata.annotations["podtier.io/tier"] == "heavy"
    assert "previous try OOMKilled at limit 4Gi" in pod.metadata.annotations["podtier.io/reason"]

    lease = kubernetes.client.CoordinationV1Api(cluster.plane.client).read_namespaced_lease(
        "podtier-learning", "podtier"
    )
    assert lease.spec.holder_identity in ("podtier-a", "podtier-b")  # one writer of the two


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_dump_and_the_cli_read_the_same_profiles(cluster: Cluster, tmp_path: Path) -> None:
    """What the documentation says: `kubectl get nodes,pods,taskprofiles -A -o json` is a file
    `podtier profiles` and `podtier explain --cluster FILE` read."""
    if not any(server.process.poll() is None for server in cluster.servers):
        cluster.serve_webhooks_from(cluster.start_podtier("podtier-a"))
    cluster.run_and_kill("report-try-1", "report_orders", 1)
    cluster.wait_oom_kills("report_orders", 1)
    kubeconfig = str(cluster.plane.kubeconfig)
    dump = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            kubeconfig,
            "get",
            "nodes,pods,taskprofiles",
            "-A",
            "-o",
            "json",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    path = tmp_path / "cluster.json"
    path.write_bytes(dump)
    from_file = run_podtier("profiles", "--cluster", str(path), "--output", "json")
    from_cluster = run_podtier("profiles", "--kubeconfig", kubeconfig, "--output", "json")
    assert from_file.returncode == 0 and from_cluster.returncode == 0, from_file.stderr
    rows = json.loads(from_file.stdout)["profiles"]
    assert rows == json.loads(from_cluster.stdout)["profiles"]
    report = next(r for r in rows if r["task_id"] == "report_orders")
    assert (report["runs"], report["oom_kills"], report["tier"]) == (1, 1, "medium")

    retry = worker_pod("report-try-2", "report_orders", 2)
    retry["metadata"]["namespace"] = NS
    pod = tmp_path / "retry.json"
    pod.write_text(json.dumps(retry))
    explained = run_podtier("explain", str(pod), "--cluster", str(path), "--output", "json")
    assert explained.returncode == 0, explained.stderr
    assert "previous try OOMKilled at limit 4Gi" in json.loads(explained.stdout)["reason"]


def test_hostile_profiles_are_ignored_with_a_log_line(cluster: Cluster) -> None:
    """Objects the CRD's schema lets through but podtier refuses: a huge figure, more OOM kills
    than runs, a name that is not its task's (a forgery claiming another task's OOM kill)."""
    for server in cluster.servers:
        server.stop()
    cluster.servers.clear()
    podtier = cluster.start_podtier("podtier-a")
    cluster.serve_webhooks_from(podtier)
    forged_run = {
        "runId": RUN_ID, "tryNumber": 1, "mapIndex": -1, "exitCode": 137, "reason": "OOMKilled",
        "oomKilled": True, "finishedAt": "2026-11-26T05:05:00Z", "memoryLimitBytes": 4 * 2**30,
    }  # fmt: skip
    hostile = {
        "huge": ("audit_orders", profile_name(task_key(NS, "sales_etl", "audit_orders")),
                 {"runs": 1, "memoryPeakBytes": 2**62}),
        "kills": ("count_orders", profile_name(task_key(NS, "sales_etl", "count_orders")),
                  {"runs": 1, "oomKills": 5}),
        "forged": ("ship_orders", "ship-orders-forged",
                   {"runs": 1, "oomKills": 1, "lastRuns": [forged_run]}),
    }  # fmt: skip
    for task, name, status in hostile.values():
        cluster.profiles.create_namespaced_custom_object(
            "podtier.io", "v1alpha1", NS, "taskprofiles",
            {
                "apiVersion": "podtier.io/v1alpha1", "kind": "TaskProfile",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"dagId": "sales_etl", "taskId": task}, "status": status,
            },
        )  # fmt: skip

    def logged() -> bool:
        return podtier.logs().count("TaskProfile airflow/") >= 3

    wait("three log lines", logged)
    logs = podtier.logs()
    assert "status.memoryPeakBytes: 4611686018427387904 is not a whole number" in logs
    assert "status.oomKills: 5 is more than status.runs 1" in logs
    forged = next(line for line in logs.splitlines() if "ship-orders-forged" in line)
    assert "is not the name of its task" in forged
    assert 'podtier_profiles{state="ignored"} 3.0' in podtier.client.get("/metrics").text
    # the forgery's OOM kill does not raise the task's retry
    pod = cluster.plane.core.create_namespaced_pod(
        NS, worker_pod("ship-try-2", "ship_orders", 2), dry_run="All"
    )
    assert pod.metadata.annotations["podtier.io/tier"] == "medium"
    assert "OOMKilled" not in pod.metadata.annotations["podtier.io/reason"]


@pytest.mark.skipif(PROMETHEUS is None, reason=SKIP_REASON)
def test_usage_comes_from_prometheus_when_asked(cluster: Cluster, tmp_path: Path) -> None:
    """`--usage-prometheus URL`: a real Prometheus scrapes cAdvisor's metrics for the pod (a
    test exporter stands in for the kubelet's cAdvisor); when the pod ends, the writer asks it
    for the base container's peak and cpu p95, and the profile has them."""
    for server in cluster.servers:
        server.stop()
    cluster.servers.clear()
    exporter = PodUsageExporter().start()
    try:
        with prometheus_server(exporter, tmp_path) as url:
            podtier = cluster.start_podtier("podtier-a", "--usage-prometheus", url)
            cluster.serve_webhooks_from(podtier)
            usage = ScriptedPod(NS, "measure-try-1", "base", [(600, 1500 * MI, 0.75)])
            other = ScriptedPod(NS, "measure-try-1", "airflow-xcom-sidecar", [(600, 5000 * MI, 2)])

            def run_for_a_while() -> None:
                usage.started = other.started = time.time()
                exporter.pods += [usage, other]
                time.sleep(6)  # a few scrapes of the running pod

            cluster.run_and_kill("measure-try-1", "measure_orders", 1, run_for_a_while)
            profile = cluster.wait_oom_kills("measure_orders", 1)
    finally:
        exporter.stop()
    run = profile["status"]["lastRuns"][-1]
    assert run["memoryPeakBytes"] == 1500 * MI  # the base container's, not the sidecar's
    assert 600 <= run["cpuP95Milli"] <= 900
    assert profile["status"]["memoryPeakBytes"] >= 4 * 2**30  # OOMKilled: at least its limit
