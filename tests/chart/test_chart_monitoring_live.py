"""The chart's monitoring, live on loopback: a real Debian `prometheus` scrapes two real `podtier
serve` replicas through the scrape job the chart's ServiceMonitor renders (translated to a static
job the way the Prometheus Operator would: scheme, path, interval, honorLabels, the job
relabeling, TLS verified with the serving CA under the chart's `serverName`), and kube-apiserver's
own /metrics, with the chart's rule file loaded.

The replicas run `--cluster auto --learning` against a real control plane (tests/controlplane.py)
with podtier registered as its admission webhooks, so the insight and learning metrics come from
real pods: Airflow pods admitted through the API server and bound by the scheduler, one waiting
for a GPU node that does not exist, Running pods with PodMetrics samples (a `metrics.k8s.io`
CRD standing in for metrics-server), and an OOM-killed task whose retry is escalated.

- every query of the dashboard (files/dashboard.json) returns series with values;
- a replica stopped fires PodtierReplicaDown, a policy file broken fires
  PodtierPolicyReloadFailing, and both clear once the replica is back and the file fixed;
- the webhook made unreachable fires the alerts that read kube-apiserver's webhook metrics, and
  the last replica stopped fires PodtierUnavailable.

Rules are the shipped ones, with each `for` shortened to seconds (their shipped values are what
prometheus_rules_test.yaml tests). Skips, saying why, without the control plane binaries or the
`prometheus` binary.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from podtier.policies import DEFAULT_POLICY
from tests.chart.chart_rendering import CHART_DIR, NAMESPACE, RELEASE, one, render
from tests.conftest import ROOT, Server, review_of, run_podtier
from tests.controlplane import ControlPlane, control_plane, wait  # noqa: F401
from tests.webhook.learning.promserver import PROMETHEUS, SKIP_REASON, prometheus_with
from tests.webhook.learning.test_controlplane_learning import worker_pod

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=SKIP_REASON)

NS = "airflow"
CRD = ROOT / "charts" / "podtier" / "crds" / "taskprofiles.yaml"
RULE_FILE = CHART_DIR / "files" / "prometheus-rules.yaml"
DASHBOARD = json.loads((CHART_DIR / "files" / "dashboard.json").read_text())
WORKER_TAINT = {"key": "dedicated", "value": "worker", "effect": "NoSchedule"}
SHORT_FOR = "2s"
CPU_HOUR, GIB_HOUR = 0.04, 0.005  # the worker pool's prices
# Grafana's interval variable, as a zoomed-out dashboard fills it
GRAFANA_VARIABLES = {"$__rate_interval": "5m"}

# metrics.k8s.io served by the API server itself: PodMetrics as a CRD (metrics-server's shape)
POD_METRICS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "pods.metrics.k8s.io",
        "annotations": {"api-approved.kubernetes.io": "unapproved, a test stand-in"},
    },
    "spec": {
        "group": "metrics.k8s.io",
        "scope": "Namespaced",
        "names": {"kind": "PodMetrics", "plural": "pods", "singular": "podmetrics"},
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def operator_scrape_job(
    endpoint: dict[str, Any], targets: dict[str, dict[str, str]], ca_file: Path
) -> dict[str, Any]:
    """A ServiceMonitor endpoint as the Prometheus Operator turns it into a scrape job: the
    same scheme, path, interval, timeout and honorLabels, its relabelings, the CA from the
    Secret (here the file podtier serves from) and the serverName; each target with the labels
    the Operator's discovery gives it (namespace, service, pod, container, endpoint)."""
    job: dict[str, Any] = {
        "job_name": f"serviceMonitor/{NAMESPACE}/{RELEASE}/0",
        "scheme": endpoint["scheme"],
        "metrics_path": endpoint["path"],
        "scrape_interval": endpoint["interval"],
        "scrape_timeout": endpoint["scrapeTimeout"],
        "honor_labels": endpoint["honorLabels"],
        "static_configs": [
            {"targets": [address], "labels": labels} for address, labels in targets.items()
        ],
        "relabel_configs": [
            {_snake(key): value for key, value in relabeling.items()}
            for relabeling in endpoint.get("relabelings", [])
        ],
    }
    tls = endpoint.get("tlsConfig")
    if tls is not None:
        assert tls["ca"]["secret"]["key"] == "ca.crt"
        job["tls_config"] = {"ca_file": str(ca_file), "server_name": tls["serverName"]}
    return job


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def short_for(rules: dict[str, Any]) -> dict[str, Any]:
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = SHORT_FOR
    return rules


@dataclass
class Stack:
    plane: ControlPlane
    directory: Path
    cert_dir: Path
    policy: Path
    replicas: dict[str, Server]
    prometheus: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        assert answer.status_code == 200, (expr, answer.text)
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def alerts(self, name: str, state: str = "firing") -> list[dict[str, str]]:
        answer = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=10).json()
        return [
            a["labels"]
            for a in answer["data"]["alerts"]
            if a["labels"]["alertname"] == name and a["state"] == state
        ]

    def start(self, name: str, port: int | None = None) -> Server:
        args = ["--cluster", "auto", "--kubeconfig", str(self.plane.kubeconfig)]
        args += ["--learning", "--policy", str(self.policy), "--log-level", "warning"]
        server = Server(
            self.cert_dir, args, env={"POD_NAME": name, "POD_NAMESPACE": NAMESPACE}, port=port
        )
        server.wait_ready()
        wait(f"{name} ready", lambda: server.client.get("/readyz").status_code == 200)
        self.replicas[name] = server
        return server

    def admit_through_the_api_server(self, names: list[str]) -> None:
        for name in names:
            self.plane.core.create_namespaced_pod(NS, airflow_pod(name))


def airflow_pod(name: str, tier: str | None = None) -> dict[str, Any]:
    pod = worker_pod(name, f"task_{name}", 1)
    if tier is not None:
        pod["metadata"]["labels"]["podtier.io/tier"] = tier
    return pod


def bound_running_with_usage(stack: Stack, names: list[str]) -> None:
    """Let the scheduler bind the pods, mark them Running as a kubelet would, and give each a
    PodMetrics sample (half of its cpu request, a quarter of its memory request)."""
    stack.plane.wait_bound(NS, names)
    custom = kubernetes.client.CustomObjectsApi(stack.plane.client)
    for name in names:
        pod = stack.plane.set_pod_status(NS, name, "Running")
        requests = pod["spec"]["containers"][0]["resources"]["requests"]
        cpu_milli = int(float(requests["cpu"]) * 1000) // 2
        memory = kubernetes.utils.parse_quantity(requests["memory"]) / 4
        sample = {
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "PodMetrics",
            "metadata": {"name": name, "namespace": NS},
            "timestamp": "2026-12-01T00:00:00Z",
            "window": "30s",
            "containers": [
                {"name": "base", "usage": {"cpu": f"{cpu_milli}m", "memory": str(int(memory))}}
            ],
        }
        custom.create_namespaced_custom_object("metrics.k8s.io", "v1beta1", NS, "pods", sample)


def oom_kill_and_retry(stack: Stack) -> None:
    """A task's first try OOM-killed (the kubelet's status), its profile written by the learning
    leader, and the retry created through the API server: escalated by the webhook's replica."""
    core = stack.plane.core
    core.create_namespaced_pod(NS, worker_pod("load-try-1", "load_orders", 1))
    stack.plane.wait_bound(NS, ["load-try-1"])
    stack.plane.set_pod_status(NS, "load-try-1", "Running")
    stack.plane.set_pod_status(NS, "load-try-1", "Failed", exit_code=137, reason="OOMKilled")
    core.delete_namespaced_pod("load-try-1", NS, grace_period_seconds=0)
    wait("podtier-a reads the task's profile", lambda: _profile_seen(stack), timeout=45)
    core.create_namespaced_pod(NS, worker_pod("load-try-2", "load_orders", 2))


def _profile_seen(stack: Stack) -> bool:
    metrics = stack.replicas["podtier-a"].client.get("/metrics").text
    return 'podtier_profiles{state="valid"} 1.0' in metrics


@pytest.fixture(scope="module")
def stack(
    control_plane: ControlPlane,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    plane = control_plane
    plane.reset()
    for namespace in (NS, NAMESPACE):
        plane.ensure_namespace(namespace)
    plane.add_node("worker-0", {"node-type": "worker"}, [WORKER_TAINT], cpu="16", memory="64Gi")
    plane.install_crd(yaml.safe_load(CRD.read_text()))
    plane.install_crd(POD_METRICS_CRD)
    directory = tmp_path_factory.mktemp("monitoring")

    # podtier's certificate names what the chart's Service is called (the ServiceMonitor's
    # serverName) and 127.0.0.1 (where the API server calls it)
    objects = render({"metrics": {"serviceMonitor": {"enabled": True}}})
    server_name = one(objects, "ServiceMonitor")["spec"]["endpoints"][0]["tlsConfig"]["serverName"]
    cert_dir = directory / "certs"
    made = run_podtier(
        "certs", "generate", "--out", str(cert_dir), "--dns", server_name, "--ip", "127.0.0.1"
    )
    assert made.returncode == 0, made.stderr

    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    doc["spec"]["pools"]["gpu"]["scaling"] = {"podsPerNode": 4, "minNodes": 0, "maxNodes": 10}
    doc["spec"]["pools"]["worker"]["scaling"] = {"podsPerNode": 8, "minNodes": 1, "maxNodes": 5}
    doc["spec"]["currency"] = "EUR"
    doc["spec"]["pools"]["worker"]["cost"] = {"cpuHour": CPU_HOUR, "memoryGiBHour": GIB_HOUR}
    policy_dir = directory / "policy"
    policy_dir.mkdir()
    policy = policy_dir / "policy.yaml"
    policy.write_text(yaml.safe_dump(doc, sort_keys=False))

    stack = Stack(plane, directory, cert_dir, policy, {}, "")
    try:
        with contextlib.ExitStack() as running:
            running.callback(lambda: [s.stop() for s in stack.replicas.values()])
            first = stack.start("podtier-a")
            stack.start("podtier-b")
            plane.register_webhooks(first.url, (cert_dir / "ca.crt").read_bytes(), [NS])
            # as the chart has them: mutating fails open, validating fails closed
            plane.admission.patch_mutating_webhook_configuration(
                "podtier",
                [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}],
            )
            plane.wait_webhooks_active(NS)

            scrape = render(
                {
                    "metrics": {
                        "serviceMonitor": {"enabled": True, "interval": "1s", "scrapeTimeout": "1s"}
                    }
                }
            )
            endpoint = one(scrape, "ServiceMonitor")["spec"]["endpoints"][0]
            targets = {
                f"127.0.0.1:{server.port}": {
                    "namespace": NAMESPACE,
                    "service": RELEASE,
                    "endpoint": endpoint["port"],
                    "pod": name,
                    "container": "podtier",
                }
                for name, server in stack.replicas.items()
            }
            apiserver = {
                "job_name": "apiserver",
                "scheme": "https",
                "authorization": {"credentials": plane.token},
                "tls_config": {"ca_file": str(plane.pki / "ca.crt")},
                "static_configs": [{"targets": [f"127.0.0.1:{plane.port}"]}],
            }
            config = {
                "scrape_configs": [
                    operator_scrape_job(endpoint, targets, cert_dir / "ca.crt"),
                    apiserver,
                ]
            }
            rules = short_for(yaml.safe_load(RULE_FILE.read_text()))
            prometheus_dir = directory / "prometheus"
            prometheus_dir.mkdir()
            stack.prometheus = running.enter_context(prometheus_with(config, prometheus_dir, rules))
            wait(
                "both replicas scraped over TLS",
                lambda: len(stack.query('up{job="podtier"} == 1')) == 2,
            )
            yield stack
    finally:
        plane.reset()


def test_every_dashboard_query_returns_series_from_the_scraped_replicas(stack: Stack) -> None:
    # what the panels show: admissions through the API server (tiers and pools), a pod waiting
    # for a GPU node that does not exist, Running pods with usage, an OOM escalation
    stack.admit_through_the_api_server([f"etl-{i}" for i in range(4)])
    stack.plane.core.create_namespaced_pod(NS, airflow_pod("train-0", tier="gpu"))
    bound_running_with_usage(stack, [f"etl-{i}" for i in range(4)])
    oom_kill_and_retry(stack)
    for server in stack.replicas.values():  # answers from both replicas, valid and not
        server.post("/mutate", review_of(airflow_pod("direct"), uid="direct"))
        server.post("/validate", review_of(airflow_pod("direct"), uid="direct"))

    queries = [
        (panel["title"], target["expr"])
        for panel in DASHBOARD["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    assert len(queries) >= 20

    def with_values(expr: str) -> list[dict[str, Any]]:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        return [s for s in stack.query(expr) if math.isfinite(float(s["value"][1]))]

    def empty() -> list[tuple[str, str]]:
        return [(title, expr) for title, expr in queries if not with_values(expr)]

    # utilization comes with the next PodMetrics poll (every 30 s with learning on)
    deadline = time.monotonic() + 75
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = empty()
    assert missing == [], "dashboard queries with no series"

    def queries_of(title: str) -> str:
        (expr,) = [expr for t, expr in queries if t == title]
        return expr

    def one_value(expr: str, **labels: str) -> float:
        found = [s for s in with_values(expr) if labels.items() <= s["metric"].items()]
        assert len(found) == 1, (expr, labels, found)
        return float(found[0]["value"][1])

    # a few the test can tell exactly: what it made
    pending = (
        "sum by (pool) (max by (tier, pool, namespace)"
        ' (podtier_airflow_pods{job="podtier", phase="Pending"}))'
    )
    assert one_value(pending, pool="gpu") == 1
    assert one_value('max by (pool) (podtier_pool_desired_nodes{job="podtier"})', pool="gpu") == 1
    assert (
        one_value('max by (pool) (podtier_pool_desired_nodes{job="podtier"})', pool="worker") == 1
    )
    utilization = 'max by (pool, resource) (podtier_pool_utilization_ratio{job="podtier"})'
    assert one_value(utilization, pool="worker", resource="cpu") == pytest.approx(0.5, abs=0.01)
    assert one_value(utilization, pool="worker", resource="memory") == pytest.approx(0.25, abs=0.01)
    # four Running medium pods (1 cpu, 2Gi each) using half their cpu, a quarter of their memory
    cost = one_value(queries_of("Cost per hour of Running Airflow pods, per pool"), pool="worker")
    assert cost == pytest.approx(4 * CPU_HOUR + 8 * GIB_HOUR)
    waste = one_value(queries_of("Waste per hour, per pool"), pool="worker")
    assert waste == pytest.approx(4 * CPU_HOUR * 0.5 + 8 * GIB_HOUR * 0.75, rel=0.02)
    assert (
        one_value(
            'sum by (tier) (increase(podtier_oom_escalations_total{job="podtier"}[1h]))',
            tier="heavy",
        )
        > 0
    )
    # the Airflow pods keep their own namespace (honorLabels), podtier's series get the target's
    assert {
        s["metric"]["namespace"] for s in stack.query('podtier_airflow_pods{job="podtier"}')
    } == {NS}
    assert {
        s["metric"]["namespace"] for s in stack.query('podtier_reservations{job="podtier"}')
    } == {NAMESPACE}


def test_a_stopped_replica_fires_replica_down_and_it_clears_when_it_is_back(stack: Stack) -> None:
    assert stack.alerts("PodtierReplicaDown") == []
    stopped = stack.replicas["podtier-b"]
    port = stopped.port
    stopped.stop()
    # `for` is 2 s, scrapes and evaluations every second: firing within the wait's 30 s
    (firing,) = wait("PodtierReplicaDown firing", lambda: stack.alerts("PodtierReplicaDown"))
    assert (firing["pod"], firing["namespace"], firing["severity"]) == (
        "podtier-b",
        NAMESPACE,
        "warning",
    )
    assert firing["instance"] == f"127.0.0.1:{port}"
    assert stack.alerts("PodtierUnavailable") == []  # podtier-a still answers
    assert stack.alerts("PodtierUnavailable", state="pending") == []

    stack.start("podtier-b", port=port)
    wait("PodtierReplicaDown cleared", lambda: stack.alerts("PodtierReplicaDown") == [])
    assert stack.alerts("PodtierReplicaDown", state="pending") == []


def test_a_broken_policy_file_fires_reload_failing_and_it_clears_when_fixed(stack: Stack) -> None:
    good = stack.policy.read_text()
    assert stack.alerts("PodtierPolicyReloadFailing") == []
    stack.policy.write_text(good.replace("mode: enforce", "mode: warn"))
    firing = wait(
        "PodtierPolicyReloadFailing firing on both replicas",
        lambda: (found := stack.alerts("PodtierPolicyReloadFailing")) and len(found) == 2 and found,
    )
    assert {a["pod"] for a in firing} == {"podtier-a", "podtier-b"}
    # the replicas keep serving the last good policy meanwhile
    answer = stack.replicas["podtier-a"].post("/mutate", review_of(airflow_pod("during"))).json()
    assert answer["response"]["allowed"] is True
    assert stack.alerts("PodtierReplicaDown") == []

    stack.policy.write_text(good)
    wait(
        "PodtierPolicyReloadFailing cleared",
        lambda: stack.alerts("PodtierPolicyReloadFailing") == [],
    )


def test_an_unreachable_webhook_fires_the_api_server_side_alerts(stack: Stack) -> None:
    assert stack.alerts("PodtierValidationCallsFailing") == []
    assert stack.alerts("PodtierMutationSkipped") == []
    stack.replicas["podtier-a"].stop()  # the replica the webhooks call
    refused = 0
    deadline = time.monotonic() + 40

    def both_firing() -> bool:
        return bool(stack.alerts("PodtierValidationCallsFailing")) and bool(
            stack.alerts("PodtierMutationSkipped")
        )

    while not both_firing() and time.monotonic() < deadline:
        with contextlib.suppress(kubernetes.client.ApiException):
            stack.plane.core.create_namespaced_pod(NS, airflow_pod(f"refused-{refused}"))
            raise AssertionError("an Airflow pod was created with the validating webhook down")
        refused += 1
        time.sleep(0.5)
    assert both_firing(), (
        stack.alerts("PodtierValidationCallsFailing", "pending"),
        stack.query("apiserver_admission_webhook_rejection_count"),
        stack.query("apiserver_admission_webhook_fail_open_count"),
    )
    (validation,) = stack.alerts("PodtierValidationCallsFailing")
    assert (validation["name"], validation["severity"]) == ("validate.podtier.io", "critical")
    (mutation,) = stack.alerts("PodtierMutationSkipped")
    assert mutation["name"] == "mutate.podtier.io"

    # and with the last replica gone too, no podtier answers at all
    assert stack.alerts("PodtierUnavailable") == []
    stack.replicas["podtier-b"].stop()
    (unavailable,) = wait("PodtierUnavailable firing", lambda: stack.alerts("PodtierUnavailable"))
    assert (unavailable["namespace"], unavailable["severity"]) == (NAMESPACE, "critical")
