"""Right-sizing from what the kernel measured (issue 20), on real nodes: Debian's Prometheus
scrapes the kubelets' cAdvisor, podtier (the chart, `learning.prometheusURL` pointing at it, a
policy with `rightSizing: apply` and the VPA's 15% margin on cpu too, since podtier's p95 from
its own PromQL and the raw samples' p95 differ by a few percent either way) learns a task from
four runs of a pod that really holds about 700Mi and spins at about 0.2 cpu, and the task's
next pod is sized from those figures: its cpu request within [p95, 1.5 x p95 + 50m] of the cpu
p95 Prometheus measured, its memory request at least the measured peak and at most 1.5 x it."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import pytest

from podtier.webhook.core.profile import task_key
from podtier.webhook.core.quantity import to_milli
from podtier.webhook.learning.names import profile_name
from tests import realnode
from tests.e2e import install
from tests.e2e.conftest import E2E_COUNTS, E2E_TIMINGS, Release

DAG, TASK = "rightsizing_e2e", "spin_and_hold"
RUNS = 4  # the policy below wants 3 before it recommends
SECONDS = 60
# Holds 700Mi (filled, so resident) and spins 20 ms of every 100 ms: about 0.2 cpu.
WORKLOAD = f"""
import time
data = b"x" * (700 * 2**20)
end = time.monotonic() + {SECONDS}
while time.monotonic() < end:
    busy = time.monotonic() + 0.02
    while time.monotonic() < busy:
        pass
    time.sleep(0.08)
"""
LEARNING_POLICY = """\
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: rightsizing-e2e}
spec:
  learning: {rightSizing: apply, minRuns: 3, cpuMargin: 0.15}
"""


def run_id(day: int) -> str:
    return f"scheduled__2026-12-{day:02d}T00:00:00+00:00"


def task_pod(name: str, image: str, day: int, command: list[str]) -> dict[str, Any]:
    return install.airflow_pod(
        name, image, command, dag_id=DAG, task_id=TASK, run_id=run_id(day), tier="light"
    )


def range_samples(prometheus: realnode.Prometheus, series: str) -> list[tuple[float, float]]:
    """The raw samples of one series over the last 20 minutes."""
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": f"{series}[20m]"})
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (the test's own)
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    samples: list[tuple[float, float]] = []
    for result in body["data"]["result"]:
        samples += [(float(t), float(v)) for t, v in result["values"]]
    return sorted(samples)


def measured(prometheus: realnode.Prometheus, pod: str) -> tuple[int, int]:
    """(cpu p95 in millicores, peak working set in bytes) of the pod's base container, from
    cAdvisor's raw samples: the p95 of the rates between consecutive samples, and the max."""
    selector = f'{{namespace="{install.AIRFLOW_NS}",pod="{pod}",container="base"}}'
    memory = range_samples(prometheus, f"container_memory_working_set_bytes{selector}")
    cpu = range_samples(prometheus, f"container_cpu_usage_seconds_total{selector}")
    rates = sorted(
        (v2 - v1) / (t2 - t1) for (t1, v1), (t2, v2) in zip(cpu, cpu[1:], strict=False) if t2 > t1
    )
    assert memory and len(rates) >= 3, (pod, memory, cpu)
    p95 = rates[max(0, math.ceil(0.95 * len(rates)) - 1)]
    return math.ceil(p95 * 1000), int(max(v for _, v in memory))


@pytest.fixture
def learning_release(
    cluster: realnode.Cluster, release: Release, prometheus: realnode.Prometheus
) -> Iterator[Release]:
    """The release with learning asking the test's Prometheus, and right-sizing applied; the
    release's own values again afterwards."""
    values = {
        **release.values,
        "learning": {"enabled": True, "prometheusURL": prometheus.url},
        "policies": {"extra": {"rightsizing.yaml": LEARNING_POLICY}},
    }
    install.helm_upgrade(cluster, values)
    install.wait_rolled_out(cluster, release.deployment)
    try:
        yield release
    finally:
        install.helm_upgrade(cluster, release.values)
        install.wait_rolled_out(cluster, release.deployment)


def test_the_next_pod_is_sized_from_what_the_kernel_measured(
    learning_release: Release,
    api: kubernetes.client.ApiClient,
    python_image: str,
    prometheus: realnode.Prometheus,
) -> None:
    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    names = [f"spin-{day}" for day in range(1, RUNS + 1)]
    started = time.monotonic()
    for day, name in enumerate(names, start=1):
        core.create_namespaced_pod(
            install.AIRFLOW_NS, task_pod(name, python_image, day, ["python", "-c", WORKLOAD])
        )
    try:
        with ThreadPoolExecutor(RUNS) as pool:
            done = list(pool.map(lambda n: install.wait_pod_done(core, n, timeout=300), names))
        assert [p.status.phase for p in done] == ["Succeeded"] * RUNS, [
            (p.metadata.name, p.status.phase) for p in done
        ]
        E2E_TIMINGS["right-sizing: 4 task runs, created to Succeeded"] = time.monotonic() - started

        key = task_key(install.AIRFLOW_NS, DAG, TASK)
        deadline = time.monotonic() + 180
        while True:
            try:
                profile = custom.get_namespaced_custom_object(
                    "podtier.io", "v1alpha1", install.AIRFLOW_NS, "taskprofiles", profile_name(key)
                )
            except kubernetes.client.ApiException as err:
                if err.status != 404:
                    raise
                profile = {}
            status = profile.get("status") or {}
            runs = status.get("lastRuns") or []
            if status.get("runs", 0) >= RUNS and all(
                r.get("cpuP95Milli") and r.get("memoryPeakBytes") for r in runs
            ):
                break
            assert time.monotonic() < deadline, f"no profile of {RUNS} runs: {profile}"
            time.sleep(2)

        truth = [measured(prometheus, name) for name in names]
        cpu_p95 = max(cpu for cpu, _ in truth)
        peak = max(memory for _, memory in truth)

        after = core.create_namespaced_pod(
            install.AIRFLOW_NS,
            task_pod("spin-next", python_image, RUNS + 1, ["true"]),
            dry_run="All",
        )
    finally:
        for name in names:
            core.delete_namespaced_pod(name, install.AIRFLOW_NS, grace_period_seconds=0)
    notes = after.metadata.annotations
    (base,) = after.spec.containers
    cpu_request = to_milli(base.resources.requests["cpu"])
    memory_request = to_milli(base.resources.requests["memory"]) // 1000
    E2E_COUNTS["right-sizing: measured cpu p95 (m)"] = cpu_p95
    E2E_COUNTS["right-sizing: measured memory peak (Mi)"] = peak // 2**20
    E2E_COUNTS["right-sizing: learned cpu p95 (m)"] = status["cpuP95Milli"]
    E2E_COUNTS["right-sizing: learned memory peak (Mi)"] = status["memoryPeakBytes"] // 2**20
    E2E_COUNTS["right-sizing: next pod cpu request (m)"] = cpu_request
    E2E_COUNTS["right-sizing: next pod memory request (Mi)"] = memory_request // 2**20
    assert "podtier.io/right-sized" in notes, notes
    assert notes["podtier.io/tier"] == "light"
    assert cpu_p95 <= cpu_request <= 1.5 * cpu_p95 + 50, (cpu_request, cpu_p95, status)
    assert peak <= memory_request <= 1.5 * peak, (memory_request, peak, status)
