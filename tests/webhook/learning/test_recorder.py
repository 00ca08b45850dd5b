"""The recorder on the live pod watch (test API server, real client): a pod's end is caught
from the watch event, also when Airflow deletes the pod at once; each pod is recorded once,
through relists; pods already finished at start are marked; PodMetrics samples of the base
container become the run's memory peak and cpu p95; without the metrics API, outcomes only,
said once in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kubernetes import client

from podtier.webhook.core.decide import decide
from podtier.webhook.core.pod import view_pod
from podtier.webhook.core.profile import task_key
from podtier.webhook.headroom import LiveHeadroom
from podtier.webhook.insight.census import PodCensus
from podtier.webhook.insight.utilization import UtilizationPoller
from podtier.webhook.learning.fold import fold
from podtier.webhook.learning.outcome import Outcome, outcome_of
from podtier.webhook.learning.recorder import OutcomeRecorder
from podtier.webhook.learning.watch import ProfileStore
from tests.conftest import FakeClock
from tests.kubeapi import KubeAPI
from tests.webhook.core.fakes import POLICY, UNKNOWN
from tests.webhook.core.test_learned import RUN, retry
from tests.webhook.headroom.builders import node
from tests.webhook.headroom.feeds import fast_backoff, wait_for
from tests.webhook.learning.pods import T0, ended, running, worker_pod

MI = 2**20


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        server.put(node("w1"))
        yield server


@contextmanager
def recording(api: KubeAPI) -> Iterator[tuple[OutcomeRecorder, LiveHeadroom]]:
    configuration = client.Configuration(host=api.url)
    configuration.retries = False
    headroom = LiveHeadroom(configuration, backoff=fast_backoff)
    recorder = OutcomeRecorder(lambda: POLICY)
    headroom.add_pod_listener(recorder)
    headroom.start()
    try:
        wait_for(headroom.ready, what="first sync")
        yield recorder, headroom
    finally:
        headroom.stop()


def collect(recorder: OutcomeRecorder, count: int) -> list[Outcome]:
    got: list[Outcome] = []
    wait_for(lambda: bool(got.extend(recorder.drain())) or len(got) >= count, what="outcomes")
    return got


def test_the_end_is_caught_from_the_watch_before_airflow_deletes_the_pod(api: KubeAPI) -> None:
    with recording(api) as (recorder, _):
        pod = worker_pod("killed")
        api.put(pod)
        api.put(running(pod))
        api.put(ended(pod))
        api.remove("Pod", "killed", "airflow")  # Airflow deletes it at once
        outcomes = collect(recorder, 1)
    assert [(o.pod, o.oom_killed, o.seen_finished) for o in outcomes] == [
        ("airflow/killed", True, False)
    ]
    assert recorder.drain() == []


def test_a_delete_that_is_the_first_sign_of_the_end_is_recorded() -> None:
    recorder = OutcomeRecorder(lambda: POLICY)
    pod = worker_pod("gone-fast")
    recorder("MODIFIED", "airflow/gone-fast", running(pod))
    recorder("DELETED", "airflow/gone-fast", ended(pod, reason="Completed", exit_code=0))
    outcomes = recorder.drain()
    assert [(o.pod, o.exit_code, o.seen_finished) for o in outcomes] == [
        ("airflow/gone-fast", 0, False)
    ]
    assert not recorder.is_running("airflow/gone-fast")


def test_each_pod_is_recorded_once_through_updates_and_relists(api: KubeAPI) -> None:
    pod = worker_pod("done")
    with recording(api) as (recorder, headroom):
        api.put(running(pod))
        done = ended(pod, reason="Completed", exit_code=0)
        api.put(done)
        assert len(collect(recorder, 1)) == 1
        done["metadata"]["labels"]["airflow_executor_done"] = "True"  # the executor's patch
        api.put(done)
        api.compact()  # the watch relists: the pod comes again, as MODIFIED
        api.drop_watches()
        wait_for(lambda: headroom.watcher.relists["Pod"] >= 2, what="relist")
        api.bookmark()
        assert recorder.drain() == []


def test_pods_already_finished_at_start_are_marked(api: KubeAPI) -> None:
    api.put(ended(worker_pod("old")))
    with recording(api) as (recorder, _):
        outcomes = collect(recorder, 1)
    assert outcomes[0].seen_finished


def test_metrics_samples_become_the_runs_peak_and_p95(api: KubeAPI) -> None:
    api.metrics_api = True
    pod = worker_pod("sampled")
    with recording(api) as (recorder, _):
        api.put(running(pod))
        wait_for(lambda: recorder.is_running("airflow/sampled"), what="running seen")
        configuration = client.Configuration(host=api.url)
        poller = UtilizationPoller(client.ApiClient(configuration), PodCensus(lambda: POLICY))
        poller.sinks.append(recorder.usage)
        for memory, cpu in [("300Mi", "100m")] * 18 + [("900Mi", "200m"), ("400Mi", "900m")]:
            api.put(pod_metrics("sampled", cpu, memory))
            poller.poll_once()
        api.put(ended(pod, reason="Completed", exit_code=0))
        outcome = collect(recorder, 1)[0]
    assert outcome.memory_peak_bytes == 900 * MI
    assert outcome.cpu_p95_milli is not None and 200 <= outcome.cpu_p95_milli <= 210


def test_without_the_metrics_api_outcomes_only_said_once(
    api: KubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    pod = worker_pod("plain")
    with recording(api) as (recorder, _), caplog.at_level(logging.INFO, "podtier.learning"):
        api.put(running(pod))
        wait_for(lambda: recorder.is_running("airflow/plain"), what="running seen")
        poller = UtilizationPoller(
            client.ApiClient(client.Configuration(host=api.url)),
            PodCensus(lambda: POLICY),
            rediscover_every=1,
        )
        poller.sinks.append(recorder.usage)
        for _ in range(3):
            poller.poll_once()
        api.put(ended(pod))
        outcome = collect(recorder, 1)[0]
    assert (outcome.memory_peak_bytes, outcome.cpu_p95_milli) == (None, None)
    assert outcome.oom_killed
    said = [r.getMessage() for r in caplog.records if "recording outcomes only" in r.getMessage()]
    assert len(said) == 1


def pod_metrics(name: str, cpu: str, memory: str) -> dict:
    return {
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": name, "namespace": "airflow"},
        "timestamp": "2026-11-26T06:00:00Z",
        "window": "30s",
        "containers": [{"name": "base", "usage": {"cpu": cpu, "memory": memory}}],
    }


def test_a_kill_counts_in_the_next_decision_before_the_profile_is_written() -> None:
    """Airflow relaunches a pod killed at start-up about a second later, sooner than the writer
    writes (real Airflow: bench/airflow_executor.py). The kill this replica's watch saw is among
    the task's last runs at once, for decisions only: the writer still folds it into the
    published profile, once."""
    wall = FakeClock(T0 + 301)  # a second after the kill
    store = ProfileStore(source="test", clock=FakeClock(), wall_clock=wall)
    store.relist([])
    recorder = OutcomeRecorder(lambda: POLICY, on_end=store.saw_end)
    first = worker_pod("oom-1", run_id=RUN, memory_limit="4Gi")
    recorder("MODIFIED", "airflow/oom-1", running(first))
    recorder("MODIFIED", "airflow/oom-1", ended(first))
    key = task_key("airflow", "sales_etl", "extract_orders")
    assert store.get(key) is None  # what the writer folds into: nothing written yet
    assert len(recorder.drain()) == 1  # and the writer still gets the outcome

    relaunch = decide(view_pod(retry(1)), POLICY, UNKNOWN, store.view())
    assert relaunch.tier.name == "heavy"
    assert relaunch.annotations["podtier.io/escalated-memory"] == "4916Mi"  # 1.2 x 4Gi
    assert "previous pod of this try OOMKilled at limit 4Gi" in relaunch.reason

    # Once the published profile has the run, it is not added a second time.
    written = fold(None, outcome_of(ended(first), POLICY), POLICY, now=T0 + 400)
    store.put(written)
    assert store.view().get(key).last_runs == written.last_runs


def test_a_run_seen_but_never_written_stops_counting_after_ten_minutes() -> None:
    """The writer's API calls may fail for long: a kill seen then does not raise pods forever."""
    wall = FakeClock(T0 + 301)
    store = ProfileStore(source="test", clock=FakeClock(), wall_clock=wall)
    store.relist([])
    pod = worker_pod("oom-1", run_id=RUN)
    store.saw_end(outcome_of(ended(pod), POLICY))
    key = task_key("airflow", "sales_etl", "extract_orders")
    assert store.view().get(key) is not None
    wall.now += 600
    store.relist([])  # any change of the published profiles looks again
    assert store.view().get(key) is None
