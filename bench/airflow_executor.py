"""Real Airflow's KubernetesExecutor against the real control plane, with podtier in the path.

    KUBEBUILDER_ASSETS=../shared/kube-assets python bench/airflow_executor.py \\
        --airflow-python /work/venv-airflow/bin/python [--retry-delay SECONDS] [--keep-pods]

Airflow (apache-airflow 3.3.2 with apache-airflow-providers-cncf-kubernetes 10.25.0) lives in
its own venv and is never a podtier dependency. This script starts the control plane and
podtier as its webhooks (`BurstCluster`: 2 worker and 2 compute nodes, `podtier serve --cluster
auto --learning`, the TaskProfile CRD installed), migrates a sqlite metadata DB (`airflow db
migrate`), then runs `bench/airflow_driver.py` with the Airflow python: Airflow's own code
schedules the DAG `bench/airflow_dags/podtier_bench.py`, and its KubernetesExecutor builds and
creates the worker pods through the API server (so through podtier). The driver asks this
script to play the kubelet (`ControlPlane.set_pod_status`) once the real scheduler bound a pod.

Prints, per pod: Airflow's labels, podtier's annotations (tier, pool, node, escalated memory,
reason), the node the scheduler bound, and what the executor made of the pod; then, for the
OOMKilled task, how soon podtier's learning recorded each kill against when Airflow's next pod
(the relaunch for the same try, then the retry) showed up; then one line per property podtier
relies on: the identity labels and annotations, the task key read from the annotations and
from the labels alone alike (`core.profile`), a relaunch keeping the labels, the retry being
try 2 of the same task. `--keep-pods` sets `delete_worker_pods = False`. Exit 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import kubernetes
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from podtier.webhook.core.matching import airflow_label_value  # noqa: E402
from podtier.webhook.core.profile import TaskInstance, task_instance, task_key  # noqa: E402
from podtier.webhook.learning.names import profile_name  # noqa: E402
from tests.controlplane import ControlPlane, missing_assets  # noqa: E402
from tests.webhook.headroom.burst import NS, BurstCluster  # noqa: E402

CRD = ROOT / "charts" / "podtier" / "crds" / "taskprofiles.yaml"
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
PODTIER = ("tier", "pool", "node", "escalated-memory", "reason")


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
        "uid": metadata["uid"],
        "node": spec.get("nodeName"),
        "labels": metadata.get("labels", {}),
        "annotations": metadata.get("annotations", {}),
        "phase": pod.get("status", {}).get("phase"),
        "resources": base.get("resources", {}),
    }


class Kubelet:
    """Answers the driver: lists its pods, writes pod statuses as a kubelet would, and times
    podtier's learning: how long after a pod's Failed status its TaskProfile records the run,
    and how long after the kill Airflow's next pod of the same task instance first showed up."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.pods: dict[str, dict[str, Any]] = {}  # as the kubelet left them, in order
        self.first_seen: dict[str, float] = {}  # pod uid -> when a listing first showed it
        self.killed: dict[str, float] = {}  # pod uid -> when its Failed status was written
        self.recorded: dict[str, float] = {}  # pod uid -> seconds until its run was recorded
        self.threads: list[threading.Thread] = []

    def answer(self, request: Mapping[str, Any]) -> Any:
        if request["kind"] == "pods":
            selector = f"airflow-worker={request['worker']}"
            found = self.plane.core.list_namespaced_pod(NS, label_selector=selector).items
            listed = [pod_summary(self.plane.client.sanitize_for_serialization(p)) for p in found]
            for pod in listed:
                self.first_seen.setdefault(pod["uid"], time.monotonic())
            return listed
        name, phase = request["pod"], request["phase"]
        pod = pod_summary(
            self.plane.set_pod_status(
                NS, name, phase, exit_code=request.get("exit_code"), reason=request.get("reason")
            )
        )
        self.pods[name] = pod
        if phase == "Failed":
            self.killed[pod["uid"]] = time.monotonic()
            thread = threading.Thread(target=self.time_recording, args=(pod,), daemon=True)
            thread.start()
            self.threads.append(thread)
        return {}

    def time_recording(self, pod: Mapping[str, Any]) -> None:
        """Wait (up to 15 s) until the pod's run is in its task's TaskProfile."""
        started, uid = time.monotonic(), pod["uid"]
        with self.plane.api_client() as api:
            while time.monotonic() - started < 15:
                if any(run.get("podUid") == uid for run in profile_runs(api, pod)):
                    self.recorded[uid] = time.monotonic() - started
                    return
                time.sleep(0.02)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def profile_runs(api: kubernetes.client.ApiClient, pod: Mapping[str, Any]) -> list[Any]:
    """The runs podtier's learning recorded (TaskProfile status.lastRuns) for the pod's task."""
    annotations = pod["annotations"]
    name = profile_name(task_key(NS, annotations["dag_id"], annotations["task_id"]))
    try:
        profile = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            "podtier.io", "v1alpha1", NS, "taskprofiles", name
        )
    except kubernetes.client.ApiException as err:
        if err.status == 404:
            return []
        raise
    return list(profile.get("status", {}).get("lastRuns", []))


def run_driver(
    plane: ControlPlane, python: str, env: dict[str, str], log: TextIO
) -> tuple[Any, Kubelet]:
    """Run the driver, answering its requests; returns its report and the kubelet (the pods
    as it left them: the executor deletes them once done, as Airflow does by default)."""
    driver = subprocess.Popen(
        [python, str(DRIVER)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert driver.stdin is not None and driver.stdout is not None
    kubelet = Kubelet(plane)
    report = None
    try:
        for line in driver.stdout:
            request = json.loads(line)
            if request["kind"] == "report":
                report = request
                continue
            driver.stdin.write(json.dumps(kubelet.answer(request)) + "\n")
            driver.stdin.flush()
    except BaseException:
        driver.terminate()
        raise
    finally:
        code = driver.wait(timeout=60)
        kubelet.join()
    if code != 0 or report is None:
        raise SystemExit(f"the Airflow driver failed (exit {code}); its log: {log.name}")
    return report, kubelet


def learning_timeline(kubelet: Kubelet, task: str) -> list[str]:
    """For each kill of `task`'s pods: when podtier recorded it, when Airflow's next pod showed
    up (first listing, polled every ~0.3 s), and which kill podtier raised that next pod from."""
    pods = [p for p in kubelet.pods.values() if identity(p).task_id == task]
    lines = []
    for killed, following in zip(pods, pods[1:], strict=False):
        uid = killed["uid"]
        if uid not in kubelet.killed:
            continue
        recorded = kubelet.recorded.get(uid)
        shown = kubelet.first_seen[following["uid"]] - kubelet.killed[uid]
        reason = following["annotations"].get("podtier.io/reason", "").split(";")[0]
        lines.append(
            f"  {task} pod {uid[:8]} killed: recorded by podtier after "
            + ("(not within 15 s)" if recorded is None else f"{recorded:.2f} s")
            + f"; the next pod ({following['uid'][:8]}, try {identity(following).try_number})"
            f" showed up after {shown:.2f} s: {reason}"
        )
    runs = profile_runs(kubelet.plane.client, pods[0]) if pods else []
    lines.append(f"  TaskProfile of {task}: {len(runs)} run(s) recorded")
    for run in runs:
        lines.append(
            f"    try {run['tryNumber']}: {run['reason']} (exit {run['exitCode']}), memory "
            f"limit {mib(run.get('memoryLimitBytes'))}, raised {mib(run.get('escalatedBytes'))},"
            f" pod {run['podUid'][:8]}"
        )
    return lines


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value // 2**20}Mi"


def identity(pod: Mapping[str, Any]) -> TaskInstance:
    found = task_instance(NS, pod["labels"], pod["annotations"])
    assert found is not None, f"{pod['name']}: podtier reads no Airflow task from it"
    return found


def check(pods: list[dict[str, Any]], worker: str) -> list[str]:
    """What podtier relies on, checked on Airflow's own pods; one line per check, naming the
    pods it fails for."""
    lines = []

    def expect(what: str, failing: list[str], scope: str = f"all {len(pods)} pods") -> None:
        verdict = "FAIL for " + ", ".join(failing) if failing else f"ok ({scope})"
        lines.append(f"  {what}: {verdict}")

    def each(test: Callable[[dict[str, Any]], bool]) -> list[str]:
        return [pod["name"] for pod in pods if not test(pod)]

    def has_identity(pod: dict[str, Any]) -> bool:
        return all(k in pod["labels"] for k in LABELS) and all(
            k in pod["annotations"] for k in ANNOTATIONS
        )

    def same_key(pod: dict[str, Any]) -> bool:
        raw = task_key(NS, pod["annotations"]["dag_id"], pod["annotations"]["task_id"])
        lean = task_instance(NS, pod["labels"], {})
        return identity(pod).key == raw and lean is not None and lean.key == raw

    def tier_asked(pod: dict[str, Any]) -> bool:
        asked = pod["labels"].get("tier")
        return asked is None or pod["annotations"].get("podtier.io/tier") == asked

    def in_pool(pod: dict[str, Any]) -> bool:
        pool = pod["annotations"].get("podtier.io/pool")
        return pool is not None and str(pod["node"]).startswith(f"{pool}-")

    expect(
        f"labels {', '.join(LABELS)} and annotations {', '.join(ANNOTATIONS)}", each(has_identity)
    )
    expect("task key (core.profile) from the annotations = from the labels alone", each(same_key))
    expect(
        "run_id label = podtier's airflow_label_value(raw run_id)",
        each(lambda p: airflow_label_value(p["annotations"]["run_id"]) == p["labels"]["run_id"]),
    )
    expect(
        f"airflow-worker={worker} (the scheduler job) and kubernetes_executor=True",
        each(lambda p: p["labels"]["airflow-worker"] == worker),
    )
    expect("a pod_override label tier=X gets podtier tier X", each(tier_asked))
    expect("bound to a node of the pool podtier pinned", each(in_pool))
    mapped = sorted(identity(p).map_index for p in pods if identity(p).task_id == "fan")
    expect(
        f"mapped task fan: map_index {mapped} (expected [0, 1])",
        [] if mapped == [0, 1] else ["fan"],
        "fan",
    )
    oom = [p for p in pods if identity(p).task_id == "oom"]
    tries = [identity(p).try_number for p in oom]
    expect(
        f"oom pods' try_number {tries} (expected [1, 1, 2])",
        [] if tries == [1, 1, 2] else ["oom"],
        "oom",
    )
    if len(oom) == 3:
        first, relaunch, retry = oom
        expect(
            "the relaunch (same try) keeps every Airflow label of the first pod",
            [] if relaunch["labels"] == first["labels"] else [relaunch["name"]],
            relaunch["name"],
        )
        expect(
            "the retry (try 2) has the same task key and run_id as try 1",
            []
            if (identity(retry).key, identity(retry).run_key)
            == (identity(first).key, identity(first).run_key)
            else [retry["name"]],
            retry["name"],
        )
    return lines


def show(pods: list[dict[str, Any]], reported: Mapping[str, list[str]]) -> str:
    lines = []
    for pod in pods:
        labels, notes = pod["labels"], pod["annotations"]
        podtier = {k: notes[f"podtier.io/{k}"] for k in PODTIER if f"podtier.io/{k}" in notes}
        uid = pod["uid"][:8]
        lines.append(f"{pod['name']} (uid {uid}) -> node {pod['node']}, phase {pod['phase']}")
        lines.append(f"  labels: {json.dumps(labels, sort_keys=True)}")
        lines.append(f"  podtier: {json.dumps(podtier)}")
        resources = pod["resources"]
        lines.append(f"  base container resources: {json.dumps(resources, sort_keys=True)}")
        lines.append(f"  executor: {'; '.join(reported.get(pod['name'], [])) or '-'}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--airflow-python",
        required=True,
        help="the python of a venv with apache-airflow 3.3.2 and the cncf-kubernetes provider",
    )
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the DAG's retry_delay (default 0: Airflow retries the OOMKilled try at once)",
    )
    parser.add_argument(
        "--keep-pods",
        action="store_true",
        help="[kubernetes_executor] delete_worker_pods = False (the DagRun is given 30 s)",
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
            plane.install_crd(yaml.safe_load(CRD.read_text()))
            burst.start(workers=2, worker_cpu="16", serve_args=["--learning"])
            env = airflow_env(work, plane)
            env["PODTIER_BENCH_RETRY_DELAY"] = str(args.retry_delay)
            if args.keep_pods:
                env["AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS"] = "False"
                env["PODTIER_BENCH_TIMEOUT"] = "30"
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
                report, kubelet = run_driver(plane, args.airflow_python, env, log)
            pods = list(kubelet.pods.values())
            print(
                f"Airflow ran the DAG in {time.monotonic() - started:.1f} s: {report['run_state']}"
            )
            for ti in sorted(
                report["task_instances"], key=lambda t: (t["task_id"], t["map_index"])
            ):
                where = f"{ti['task_id']}[{ti['map_index']}]"
                print(f"  task instance {where}: try {ti['try_number']}, {ti['state']}")
            print(show(pods, report["reported"]))
            print("podtier's learning, timed:")
            print("\n".join(learning_timeline(kubelet, "oom")))
            print("what podtier relies on:")
            lines = check(pods, report["worker"])
            print("\n".join(lines))
            print(f"Airflow's log: {work / 'airflow.log'}")
            return 1 if any(": FAIL" in line for line in lines) else 0
        finally:
            burst.close()


if __name__ == "__main__":
    raise SystemExit(main())
