"""Real Airflow's KubernetesExecutor against the real control plane, with podtier in the path.

    KUBEBUILDER_ASSETS=../shared/kube-assets python bench/airflow_executor.py \\
        --airflow-python /work/venv-airflow/bin/python

Airflow (apache-airflow 3.3.2 with apache-airflow-providers-cncf-kubernetes 10.25.0) lives in
its own venv and is never a podtier dependency: this script starts the control plane and
podtier as its webhooks (`tests/webhook/headroom/burst.py` `BurstCluster`: 2 worker nodes, 2
compute nodes, `podtier serve --cluster auto`), migrates a sqlite metadata DB with `airflow db
migrate`, then runs `bench/airflow_driver.py` with the Airflow python: Airflow's own code
schedules the DAG `bench/airflow_dags/podtier_bench.py` and its KubernetesExecutor builds and
creates the worker pods through the API server (so through podtier). The driver asks this
script to play the kubelet (`ControlPlane.set_pod_status`) once the real scheduler bound a pod.

Prints, per pod: the Airflow labels, podtier's annotations (tier, pool, node, reason), the node
the scheduler bound, and what the executor reported; then checks what podtier relies on: the
labels and annotations podtier's learning reads (`core.profile.task_instance`) give each pod
its task's key and instance, from the annotations and from the labels alone alike; a relaunch
(same try) keeps the labels; the retry has try_number 2 and the same task key.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from podtier.webhook.core.profile import TaskInstance, task_instance, task_key  # noqa: E402
from podtier.webhook.policy.airflow import airflow_label_value  # noqa: E402
from tests.controlplane import ControlPlane, missing_assets  # noqa: E402
from tests.webhook.headroom.burst import NS, BurstCluster  # noqa: E402

DRIVER = ROOT / "bench" / "airflow_driver.py"
DAGS = ROOT / "bench" / "airflow_dags"
POD_TEMPLATE = """\
apiVersion: v1
kind: Pod
metadata:
  name: placeholder-name
spec:
  restartPolicy: Never
  containers:
    - name: base
      image: placeholder-image
"""
# What every KubernetesExecutor worker pod must carry for podtier (policy selector, learning).
LABELS = ("dag_id", "task_id", "run_id", "try_number", "kubernetes_executor", "airflow-worker")
ANNOTATIONS = ("dag_id", "task_id", "run_id", "try_number")
PODTIER = ("tier", "pool", "node", "reason")


def airflow_env(work: Path, plane: ControlPlane) -> dict[str, str]:
    home = work / "airflow"
    home.mkdir(exist_ok=True)
    template = home / "pod_template.yaml"
    template.write_text(POD_TEMPLATE)
    settings = {
        "CORE__DAGS_FOLDER": str(DAGS),
        "CORE__EXECUTOR": "KubernetesExecutor",
        "CORE__LOAD_EXAMPLES": "False",
        "DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "KUBERNETES_EXECUTOR__NAMESPACE": NS,
        "KUBERNETES_EXECUTOR__IN_CLUSTER": "False",
        "KUBERNETES_EXECUTOR__CONFIG_FILE": str(plane.kubeconfig),
        "KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE": str(template),
        "KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY": "apache/airflow",
        "KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG": "3.3.2",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(home)
    env.update({f"AIRFLOW__{key}": value for key, value in settings.items()})
    return env


def pod_summary(pod: Mapping[str, Any]) -> dict[str, Any]:
    """What the driver and the report need of a pod (as the API server returns it, in JSON)."""
    metadata, spec = pod["metadata"], pod["spec"]
    base = next(c for c in spec["containers"] if c["name"] == "base")
    return {
        "name": metadata["name"],
        "created": metadata["creationTimestamp"] + metadata["uid"],
        "node": spec.get("nodeName"),
        "labels": metadata.get("labels", {}),
        "annotations": metadata.get("annotations", {}),
        "phase": pod.get("status", {}).get("phase"),
        "resources": base.get("resources", {}),
    }


def run_driver(
    plane: ControlPlane, python: str, env: dict[str, str], log: TextIO
) -> tuple[Any, list[dict[str, Any]]]:
    """Run the driver, answering its requests; returns its report and the pods as the kubelet
    left them (the executor deletes them once done, as Airflow does by default)."""
    driver = subprocess.Popen(
        [python, str(DRIVER)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert driver.stdin is not None and driver.stdout is not None
    report = None
    pods: dict[str, dict[str, Any]] = {}
    try:
        for line in driver.stdout:
            if not line.startswith("@@ "):
                log.write(line)
                continue
            request = json.loads(line[3:])
            if request["kind"] == "report":
                report = request
                continue
            if request["kind"] == "pods":
                selector = f"airflow-worker={request['worker']}"
                found = plane.core.list_namespaced_pod(NS, label_selector=selector).items
                answer: Any = [
                    pod_summary(plane.client.sanitize_for_serialization(p)) for p in found
                ]
            else:  # kubelet
                pods[request["pod"]] = pod_summary(
                    plane.set_pod_status(
                        NS,
                        request["pod"],
                        request["phase"],
                        exit_code=request.get("exit_code"),
                        reason=request.get("reason"),
                    )
                )
                answer = {}
            driver.stdin.write(json.dumps(answer) + "\n")
            driver.stdin.flush()
    finally:
        code = driver.wait(timeout=60)
    if code != 0 or report is None:
        raise SystemExit(f"the Airflow driver failed (exit {code}); its log: {log.name}")
    return report, list(pods.values())


def identity(pod: Mapping[str, Any]) -> TaskInstance:
    found = task_instance(NS, pod["labels"], pod["annotations"])
    assert found is not None, f"{pod['name']}: podtier reads no Airflow task from it"
    return found


def check(pods: list[dict[str, Any]], worker: str) -> list[str]:
    """What podtier relies on, checked on Airflow's own pods; returns one line per check."""
    lines = []

    def expect(ok: bool, what: str) -> None:
        lines.append(f"  {'ok  ' if ok else 'FAIL'} {what}")

    for pod in pods:
        labels, annotations = pod["labels"], pod["annotations"]
        missing = [f"label {k}" for k in LABELS if k not in labels]
        missing += [f"annotation {k}" for k in ANNOTATIONS if k not in annotations]
        expect(not missing, f"{pod['name']}: Airflow identity present {missing or ''}")
        whole, lean = identity(pod), task_instance(NS, labels, {})
        raw = task_key(NS, annotations["dag_id"], annotations["task_id"])
        expect(
            whole.key == raw and lean is not None and lean.key == raw,
            f"{pod['name']}: task key from annotations = from labels only = {raw.dag}/{raw.task}",
        )
        expect(
            airflow_label_value(annotations["run_id"]) == labels["run_id"],
            f"{pod['name']}: run_id label is podtier's airflow_label_value of the raw run_id",
        )
        expect(
            labels["airflow-worker"] == worker and labels["kubernetes_executor"] == "True",
            f"{pod['name']}: airflow-worker={worker}, kubernetes_executor=True",
        )
        asked = labels.get("tier")
        expect(
            asked is None or pod["annotations"].get("podtier.io/tier") == asked,
            f"{pod['name']}: podtier tier {pod['annotations'].get('podtier.io/tier')}"
            + (f" (asked by the pod_override label tier={asked})" if asked else ""),
        )
    mapped = sorted(identity(p).map_index for p in pods if identity(p).task_id == "fan")
    expect(mapped == [0, 1], f"mapped task fan: map_index {mapped} read by podtier")
    oom = sorted((p for p in pods if identity(p).task_id == "oom"), key=created)
    tries = [identity(p).try_number for p in oom]
    expect(tries == [1, 1, 2], f"oom pods in creation order have try_number {tries}")
    if len(oom) == 3:
        first, relaunch, retry = oom
        airflow_keys = [k for k in first["labels"] if not k.startswith("podtier.io/")]
        same = all(relaunch["labels"].get(k) == first["labels"][k] for k in airflow_keys)
        expect(same, "the relaunch (same try) keeps every Airflow label of the first pod")
        expect(
            identity(retry).key == identity(first).key
            and identity(retry).run_key == identity(first).run_key,
            "the retry (try 2) has the same task key and run as try 1",
        )
    return lines


def created(pod: Mapping[str, Any]) -> str:
    return str(pod["created"])


def show(pods: list[dict[str, Any]], reported: Mapping[str, list[str]]) -> str:
    lines = []
    for pod in sorted(pods, key=created):
        labels, notes = pod["labels"], pod["annotations"]
        airflow = {k: v for k, v in labels.items() if not k.startswith("podtier.io/")}
        podtier = {k: notes.get(f"podtier.io/{k}") for k in PODTIER}
        lines.append(f"{pod['name']} -> node {pod['node']}, phase {pod['phase']}")
        lines.append(f"  labels: {json.dumps(airflow, sort_keys=True)}")
        lines.append(f"  podtier: {json.dumps(podtier)}")
        resources = pod["resources"]
        lines.append(f"  base container resources: {json.dumps(resources, sort_keys=True)}")
        lines.append(f"  executor reported: {', '.join(reported.get(pod['name'], [])) or '-'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--airflow-python",
        required=True,
        help="the python of a venv with apache-airflow 3.3.2 and the cncf-kubernetes provider",
    )
    args = parser.parse_args()
    why = missing_assets()
    if why is not None:
        print(f"no control plane binaries: {why}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="podtier-airflow-"))
    with ControlPlane(os.environ["KUBEBUILDER_ASSETS"], work / "plane") as plane:
        print(f"control plane up in {plane.startup_seconds:.1f} s")
        burst = BurstCluster(plane, work)
        try:
            burst.start(workers=2, worker_cpu="16")
            env = airflow_env(work, plane)
            started = time.monotonic()
            with open(work / "airflow.log", "w") as log:
                migrated = subprocess.run(
                    [args.airflow_python, "-m", "airflow", "db", "migrate"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
                if migrated.returncode != 0:
                    raise SystemExit(f"airflow db migrate failed; its log: {log.name}")
                report, pods = run_driver(plane, args.airflow_python, env, log)
            print(
                f"Airflow ran the DAG in {time.monotonic() - started:.1f} s: {report['run_state']}"
            )
            for ti in sorted(
                report["task_instances"], key=lambda t: (t["task_id"], t["map_index"])
            ):
                where = f"{ti['task_id']}[{ti['map_index']}]"
                print(f"  task instance {where}: try {ti['try_number']}, {ti['state']}")
            print(show(pods, report["reported"]))
            print("what podtier relies on:")
            lines = check(pods, report["worker"])
            print("\n".join(lines))
            print(f"Airflow's log: {work / 'airflow.log'}")
            return 1 if any("FAIL" in line for line in lines) else 0
        finally:
            burst.close()


if __name__ == "__main__":
    raise SystemExit(main())
