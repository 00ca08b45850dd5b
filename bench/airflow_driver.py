"""Airflow's scheduler-side code driving its KubernetesExecutor, for bench/airflow_executor.py.

Run by the Airflow venv's python (never imported by podtier), with AIRFLOW_HOME, a sqlite
metadata DB already migrated, the executor configured by AIRFLOW__KUBERNETES_EXECUTOR__* to the
control plane's kubeconfig, and `bench/airflow_dags` as the dags folder. What runs is Airflow's:

- the DAG is parsed and serialized into the DB as the dag processor does (`sync_bag_to_db`);
- a manual DagRun is created (`SerializedDAG.create_dagrun`), and the loop is `dag.test()`'s
  executor loop: `DagRun.update_state` picks schedulable task instances (mapped tasks expanded,
  retries due), each is scheduled (try_number + 1) and queued by this scheduler job
  (`queued_by_job_id`), handed over as an `ExecuteTask` workload, `KubernetesExecutor.heartbeat()`
  builds and creates the pods (`AirflowKubernetesScheduler.run_next`), its `KubernetesJobWatcher`
  process watches them, and `SchedulerJobRunner.process_executor_events` applies what the
  executor reports (a failure with retries left becomes up_for_retry).

There is no kubelet and no worker: this script asks the bench (one JSON line on stdout, one
reply line on stdin) to write the pod statuses a kubelet would, and writes into the
DB what the task's worker would (running, success). The task `oom` is OOMKilled twice: first
before its worker started (the task instance still queued: the executor relaunches the pod for
the same try, `pod_launch_failure_retries`), then while running (a failed try: Airflow retries
it as try 2, which succeeds). The last line is a report of what the executor said per pod.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

DAG_ID = "podtier_bench"
TIMEOUT = float(os.environ.get("PODTIER_BENCH_TIMEOUT", "240"))  # seconds for the DagRun


# The bench reads requests from stdout: keep it to this script. Airflow, and the processes it
# forks (the watcher, the multiprocessing managers), print to stderr instead (set in main()).
PROTOCOL = sys.stdout


def send(kind: str, **payload: Any) -> None:
    PROTOCOL.write(json.dumps({"kind": kind, **payload}) + "\n")
    PROTOCOL.flush()


def ask(kind: str, **payload: Any) -> Any:
    send(kind, **payload)
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("the bench went away")
    return json.loads(line)


def sync_dag(session: Any) -> Any:
    """Parse the dags folder and write the serialized DAG, as the dag processor does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dagbag import DBDagBag

    manager = DagBundlesManager()
    manager.sync_bundles_to_db(session=session)
    session.commit()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        sync_bag_to_db(bag, bundle.name, bundle.version)
    dag = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
    if dag is None:
        raise SystemExit(f"DAG {DAG_ID} not found in the dags folder")
    return dag


def main() -> int:
    global PROTOCOL
    PROTOCOL = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from airflow import settings
    from airflow.executors.workloads import BundleInfo, ExecuteTask
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import (
        KubernetesExecutor,
    )
    from airflow.utils import timezone
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    session = settings.Session()
    dag = sync_dag(session)
    job = Job()
    job.job_type = "SchedulerJob"
    job.state = "running"
    session.add(job)
    session.commit()

    now = timezone.utcnow()
    run = dag.create_dagrun(
        run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=now, run_after=now),
        logical_date=now,
        data_interval=(now, now),
        run_after=now,
        run_type=DagRunType.MANUAL,
        triggered_by=DagRunTriggeredByType.TEST,
        state=DagRunState.RUNNING,
        start_date=now,
        session=session,
    )
    session.commit()

    executor = KubernetesExecutor()
    executor.job_id = job.id
    executor.start()

    # What the executor made of each pod's watch events: the state its watcher reported, and
    # what `_change_state` did with it (observed; the real method runs unchanged).
    reported: dict[str, list[str]] = defaultdict(list)
    change_state = executor._change_state

    def spy(results: Any, **kwargs: Any) -> None:
        change_state(results, **kwargs)
        attempt = executor.pod_launch_attempts.get(results.key)
        if attempt is not None and attempt.requeued_for_pod == results.pod_name:
            outcome = "relaunched for the same try"
        elif results.key in executor.event_buffer:
            outcome = f"event {executor.event_buffer[results.key][0]}"
        else:
            outcome = "no event"
        entry = f"{results.state} -> {outcome}"
        if reported[results.pod_name][-1:] != [entry]:
            reported[results.pod_name].append(entry)

    executor._change_state = spy  # type: ignore[method-assign]

    acted: set[str] = set()
    oom_pods: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while run.state == DagRunState.RUNNING:
            if time.monotonic() > deadline:
                print(f"the DagRun is still running after {TIMEOUT:g} s", file=sys.stderr)
                break
            session.expire_all()
            schedulable, _ = run.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
                ti.scheduled_dttm = timezone.utcnow()
            session.commit()
            for ti in run.get_task_instances(session=session):
                if ti.state != TaskInstanceState.SCHEDULED or executor.has_task(ti):
                    continue
                ti.state = TaskInstanceState.QUEUED
                ti.queued_by_job_id = job.id
                ti.queued_dttm = timezone.utcnow()
                session.commit()
                workload = ExecuteTask.make(
                    ti,
                    dag_rel_path=Path(dag.fileloc),
                    generator=executor.jwt_generator,
                    bundle_info=BundleInfo(name="dags-folder"),
                )
                executor.queue_workload(workload, session=session)
                session.commit()
            executor.heartbeat()
            session.expire_all()
            SchedulerJobRunner.process_executor_events(
                executor=executor, job_id=job.id, scheduler_dag_bag=DBDagBag(), session=session
            )
            session.commit()
            for pod in ask("pods", worker=str(job.id)):
                if pod["name"] in acted or not pod["node"]:
                    continue
                acted.add(pod["name"])
                play_worker_and_kubelet(pod, run, oom_pods, session)
            time.sleep(0.3)
        tis = [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "try_number": ti.try_number,
                "state": str(ti.state),
            }
            for ti in run.get_task_instances(session=session)
        ]
        send(
            "report",
            worker=str(job.id),
            run_state=str(run.state)
            + (f" (gave up after {TIMEOUT:g} s)" if run.state == DagRunState.RUNNING else ""),
            reported=reported,
            task_instances=tis,
        )
    finally:
        executor.end()
    return 0


def play_worker_and_kubelet(
    pod: dict[str, Any], run: Any, oom_pods: list[str], session: Any
) -> None:
    """What the worker (DB) and the kubelet (pod status, by the bench) would do for this pod."""
    from airflow.utils import timezone
    from airflow.utils.state import TaskInstanceState

    labels = pod["labels"]
    ti = run.get_task_instance(
        pod["annotations"]["task_id"],
        session=session,
        map_index=int(pod["annotations"].get("map_index", -1)),
    )

    def worker(state: TaskInstanceState) -> None:
        ti.state = state
        if state == TaskInstanceState.RUNNING:
            ti.start_date = timezone.utcnow()
        else:
            ti.end_date = timezone.utcnow()
        session.commit()

    if ti.task_id == "oom" and labels["try_number"] == "1":
        oom_pods.append(pod["name"])
        if len(oom_pods) > 1:  # the relaunched pod: this time the task runs, then is killed
            ask("kubelet", pod=pod["name"], phase="Running")
            worker(TaskInstanceState.RUNNING)
        ask("kubelet", pod=pod["name"], phase="Failed", exit_code=137, reason="OOMKilled")
        return
    ask("kubelet", pod=pod["name"], phase="Running")
    worker(TaskInstanceState.RUNNING)
    worker(TaskInstanceState.SUCCESS)
    ask("kubelet", pod=pod["name"], phase="Succeeded", exit_code=0, reason="Completed")


if __name__ == "__main__":
    raise SystemExit(main())
