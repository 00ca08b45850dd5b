"""Inputs for report tests: a priced policy, PodRuns by hand, and raw Pods, PodMetrics and
TaskProfiles as the API server (or kubectl) shows them."""

from __future__ import annotations

from typing import Any

import yaml

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core.profile import task_key
from podtier.webhook.learning.names import profile_name
from podtier.webhook.policy import Policy
from podtier.webhook.policy.load import load_policy_text
from podtier.webhook.report.facts import PodRun, RunKey
from tests.webhook.insight.pods import airflow_pod, stamp

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
GIB = 1024**3
HOUR = 3600.0
# worker and gpu are priced, compute is not (a pool without prices)
PRICES = {
    "worker": {"cpuHour": 0.04, "memoryGiBHour": 0.005},
    "gpu": {"cpuHour": 0.04, "memoryGiBHour": 0.005, "gpuHour": 2.0},
}


def priced_policy(
    prices: dict[str, dict[str, float]] | None = None, currency: str = "EUR"
) -> Policy:
    return load_policy_text([("priced.yaml", policy_text(prices, currency))])


def policy_text(prices: dict[str, dict[str, float]] | None = None, currency: str = "EUR") -> str:
    """The default policy with `prices` (default PRICES) on its pools, as YAML."""
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    for pool, cost in (PRICES if prices is None else prices).items():
        doc["spec"]["pools"][pool]["cost"] = cost
    if currency:
        doc["spec"]["currency"] = currency
    return yaml.safe_dump(doc, sort_keys=False)


def run(
    name: str,
    *,
    task: str | None = None,
    tier: str = "medium",
    pool: str = "worker",
    phase: str = "Succeeded",
    created: float | None = None,
    bound: float | None = None,
    started: float | None = None,
    finished: float | None = None,
    cpu: int = 1000,
    memory: int = 2 * GIB,
    gpu: int = 0,
    oom_killed: bool = False,
    run_key: RunKey | None = None,
) -> PodRun:
    """A PodRun as `facts.pod_run` makes it; `waiting` follows from phase and `bound`."""
    waiting = phase not in ("Succeeded", "Failed") and bound is None and started is None
    return PodRun(
        key=f"airflow/{name}",
        task=("airflow", "etl", task or name),
        run=run_key,
        tier=tier,
        pool=pool,
        phase=phase,
        waiting=waiting,
        created=created,
        bound=bound,
        started=started,
        finished=finished,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        oom_killed=oom_killed,
    )


def raw_pod(
    name: str,
    *,
    phase: str = "Succeeded",
    tier: str = "medium",
    pool: str = "worker",
    node: str = "w1",
    task: str | None = None,
    created: float = NOW - 4 * HOUR,
    scheduled: float | None = None,
    started: float | None = None,
    finished: float | None = None,
    cpu: str = "1",
    memory: str = "2Gi",
    gpus: str | None = None,
    reason: str = "Completed",
    run_id: str | None = None,
    try_number: str = "1",
) -> dict[str, Any]:
    """A KubernetesExecutor worker pod with the fields the report reads."""
    pod = airflow_pod(
        name,
        phase=phase,
        tier=tier,
        pool=pool,
        node=node,
        created=created,
        scheduled=scheduled,
        finished=finished,
        cpu=cpu,
        memory=memory,
    )
    meta = pod["metadata"]
    task_id = task or f"load_{name}"
    meta["annotations"]["task_id"] = meta["labels"]["task_id"] = task_id
    if run_id is not None:
        meta["annotations"]["run_id"] = run_id
        meta["annotations"]["try_number"] = try_number
    if gpus is not None:
        resources = pod["spec"]["containers"][0]["resources"]
        resources["requests"]["nvidia.com/gpu"] = gpus
        resources["limits"] = {"nvidia.com/gpu": gpus}
    status = pod["status"]
    if started is not None:
        status["startTime"] = stamp(started)
    if finished is not None:
        status["containerStatuses"][0]["state"]["terminated"]["reason"] = reason
    return pod


def pod_metrics(name: str, cpu: str, memory: str, at: float = NOW) -> dict[str, Any]:
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": "airflow"},
        "timestamp": stamp(at),
        "window": "15s",
        "containers": [{"name": "base", "usage": {"cpu": cpu, "memory": memory}}],
    }


def task_profile(
    task: str,
    *,
    runs: int = 10,
    oom_kills: int = 0,
    run_seconds: float = 10 * HOUR,
    memory_peak: int | None = GIB,
    cpu_p95: int | None = 500,
    requests: dict[str, str] | None = None,
    tier: str = "medium",
    pool: str = "worker",
    recommended: str | None = None,
    last_runs: list[dict[str, Any]] | None = None,
    updated: float = NOW - 60,
) -> dict[str, Any]:
    """A TaskProfile as the learning work writes it (namespace airflow, dag etl). Each of
    `last_runs` gets a `finishedAt` (a time learning requires) unless it has one."""
    runs_seen = [{"finishedAt": stamp(updated), **run} for run in last_runs or []]
    return {
        "apiVersion": "podtier.io/v1alpha1",
        "kind": "TaskProfile",
        "metadata": {
            "name": profile_name(task_key("airflow", "etl", task)),
            "namespace": "airflow",
            "labels": {"app.kubernetes.io/managed-by": "podtier"},
        },
        "spec": {"dagId": "etl", "taskId": task},
        "status": {
            "runs": runs,
            "oomKills": oom_kills,
            "runSeconds": run_seconds,
            "memoryPeakBytes": memory_peak,
            "cpuP95Milli": cpu_p95,
            "requests": requests or {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
            "tier": tier,
            "pool": pool,
            "recommendedTier": recommended,
            "lastRuns": runs_seen,
            "updatedAt": stamp(updated),
        },
    }


def small_cluster() -> list[dict[str, Any]]:
    """A node, five Airflow pods, a web pod, a TaskProfile and a PodMetrics, as
    `kubectl get nodes,pods,taskprofiles,podmetrics -A -o json` lists them. The latest moment
    shown is NOW (the PodMetrics sample). By hand, with PRICES:

    pod     pool     phase      t     requests           cost        wait for a node
    done    worker   Succeeded  1 h   1 core, 2 GiB      0.05        30 s
    busy    worker   Running    1 h   1 core, 2 GiB      0.05        0 s (uses 0.5, 1 GiB)
    oom     compute  Failed     0.5h  2 cores, 4 GiB     (no prices) 0 s (OOMKilled)
    queued  worker   Pending    0     1 core, 2 GiB      0           600 s so far
    train   gpu      Succeeded  0.5h  2, 8 GiB, 1 GPU    1.06        20 s

    load_done's profile: 10 h of runs at 1 core and 2 GiB, cpu p95 0.2 core, peak 512 MiB,
    recommended light (0.25 core, 0.5 GiB): done would cost 0.0125 instead of 0.05.
    """
    from tests.webhook.headroom.builders import node
    from tests.webhook.insight.pods import plain_pod

    return [
        node("w1"),
        raw_pod(
            "done",
            created=NOW - 3 * HOUR - 60,
            scheduled=NOW - 3 * HOUR - 30,
            started=NOW - 3 * HOUR,
            finished=NOW - 2 * HOUR,
        ),
        raw_pod(
            "busy",
            phase="Running",
            created=NOW - HOUR,
            scheduled=NOW - HOUR,
            started=NOW - HOUR,
        ),
        raw_pod(
            "oom",
            phase="Failed",
            tier="heavy",
            pool="compute",
            cpu="2",
            memory="4Gi",
            created=NOW - 2 * HOUR,
            scheduled=NOW - 2 * HOUR,
            started=NOW - 2 * HOUR,
            finished=NOW - 1.5 * HOUR,
            reason="OOMKilled",
        ),
        raw_pod("queued", phase="Pending", node="", created=NOW - 600),
        raw_pod(
            "train",
            tier="gpu",
            pool="gpu",
            cpu="2",
            memory="8Gi",
            gpus="1",
            created=NOW - HOUR - 20,
            scheduled=NOW - HOUR,
            started=NOW - HOUR,
            finished=NOW - HOUR / 2,
        ),
        plain_pod("web", phase="Running"),
        task_profile(
            "load_done",
            run_seconds=10 * HOUR,
            cpu_p95=200,
            memory_peak=GIB // 2,
            recommended="light",
        ),
        pod_metrics("busy", "500m", "1Gi", at=NOW),
    ]
