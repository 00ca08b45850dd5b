"""The profile writer against the test API server (real client, real Lease): only the Lease
holder writes; a follower keeps recent outcomes and, once it holds the Lease, writes those the
profile does not have yet; a write that lost a race is read again and folded again; an
unreadable object in the way is replaced."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
from kubernetes import client

from podtier.webhook.core.profile import task_key
from podtier.webhook.learning.names import profile_name
from podtier.webhook.learning.profiles import parse_profile
from podtier.webhook.learning.recorder import OutcomeRecorder
from podtier.webhook.learning.watch import ProfileStore
from podtier.webhook.learning.writer import ProfileWriter
from podtier.webhook.lease import LeaderLease
from tests.conftest import FakeClock
from tests.kubeapi import KubeAPI
from tests.webhook.core.fakes import POLICY
from tests.webhook.learning.pods import T0, ended, running, worker_pod

KEY = task_key("airflow", "sales_etl", "extract_orders")
NAME = profile_name(KEY)


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        yield server


class Replica:
    """One replica's learning: recorder, store and writer, with its own Lease."""

    def __init__(self, api: KubeAPI, identity: str, clock: FakeClock) -> None:
        configuration = client.Configuration(host=api.url)
        configuration.retries = False
        api_client = client.ApiClient(configuration)
        self.recorder = OutcomeRecorder(lambda: POLICY)
        self.store = ProfileStore(source="test", clock=clock)
        self.lease = LeaderLease(
            api_client,
            name="podtier-learning",
            namespace="podtier",
            identity=identity,
            clock=clock,
            purpose="learning",
        )
        self.writer = ProfileWriter(
            self.recorder,
            self.store,
            api_client,
            self.lease,
            lambda: POLICY,
            clock=clock,
            wall_clock=lambda: T0 + 10**4,
        )

    def sees_run(self, name: str, try_number: int = 1, reason: str = "OOMKilled", i: int = 0):
        self.sees(run_of(name, try_number, reason, i))

    def sees(self, pods: tuple[dict, dict]) -> None:
        """A pod's events: running, then ended."""
        key = f"airflow/{pods[0]['metadata']['name']}"
        for pod in pods:
            self.recorder("MODIFIED", key, pod)


def run_of(name: str, try_number: int = 1, reason: str = "OOMKilled", i: int = 0):
    pod = worker_pod(name, try_number=try_number)
    code = 137 if reason == "OOMKilled" else 0
    return running(pod), ended(pod, reason=reason, exit_code=code, finished=T0 + 300 + i)


def stored(api: KubeAPI):
    obj = api.get("TaskProfile", NAME, "airflow")
    return None if obj is None else parse_profile(obj)


def test_the_holder_creates_then_updates_the_profile(api: KubeAPI) -> None:
    replica = Replica(api, "a", FakeClock(100))
    replica.sees_run("p1", 1)
    replica.sees_run("p2", 2, reason="Completed", i=1)
    result = replica.writer.run_once()
    assert (result.leader, result.written, result.recorded) == (True, 1, 2)
    profile = stored(api)
    assert profile is not None
    assert (profile.runs, profile.oom_kills) == (2, 1)
    assert [r.try_number for r in profile.last_runs] == [1, 2]
    replica.sees_run("p3", 1, reason="Completed", i=2)
    assert replica.writer.run_once().written == 1
    profile = stored(api)
    assert profile is not None and profile.runs == 3


def test_only_the_holder_writes_and_a_new_holder_writes_only_what_is_missing(
    api: KubeAPI,
) -> None:
    clock = FakeClock(100)
    a, b = Replica(api, "a", clock), Replica(api, "b", clock)
    assert a.lease.ensure() and not b.lease.ensure()
    p1, p2 = run_of("p1", 1), run_of("p2", 2, reason="Completed", i=1)
    for replica in (a, b):  # every replica sees every pod
        replica.sees(p1)
    assert not b.writer.run_once().leader
    assert a.writer.run_once().written == 1
    for replica in (a, b):
        replica.sees(p2)
    assert b.writer.run_once().written == 0
    profile = stored(api)
    assert profile is not None and profile.runs == 1
    # a stops (no release, as on a crash); b takes over once the Lease expires, and writes
    # p2 from the outcomes it kept, but not p1 again
    clock.now += 16
    result = b.writer.run_once()
    assert (result.leader, result.recorded, result.known) == (True, 1, 1)
    profile = stored(api)
    assert profile is not None and profile.runs == 2


def test_a_follower_keeps_outcomes_only_for_a_while(api: KubeAPI) -> None:
    clock = FakeClock(100)
    a, b = Replica(api, "a", clock), Replica(api, "b", clock)
    assert a.lease.ensure()
    b.sees_run("p1", 1)
    b.writer.run_once()
    clock.now += 31
    a.lease.release()
    assert b.writer.run_once().recorded == 0
    assert stored(api) is None


def test_a_write_that_lost_a_race_is_folded_again(api: KubeAPI) -> None:
    replica = Replica(api, "a", FakeClock(100))
    replica.sees_run("p1", 1)
    replica.writer.run_once()
    # another writer (an old leader's late write) moves the object on behind the store's back
    obj = api.get("TaskProfile", NAME, "airflow")
    assert obj is not None
    obj["status"]["runs"] = 5
    api.put(obj)
    replica.sees_run("p2", 2, reason="Completed", i=1)
    assert replica.writer.run_once().written == 1
    profile = stored(api)
    assert profile is not None and profile.runs == 6
    assert ("PUT", f"/apis/podtier.io/v1alpha1/namespaces/airflow/taskprofiles/{NAME}") in [
        (m, p.split("?")[0]) for m, p in api.requests
    ]


def test_an_unreadable_object_in_the_way_is_replaced(
    api: KubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    api.put(
        {
            "apiVersion": "podtier.io/v1alpha1",
            "kind": "TaskProfile",
            "metadata": {"name": NAME, "namespace": "airflow"},
            "spec": {"dagId": "sales_etl", "taskId": "extract_orders"},
            "status": {"runs": "garbage"},
        }
    )
    replica = Replica(api, "a", FakeClock(100))
    replica.sees_run("p1", 1)
    with caplog.at_level(logging.WARNING, "podtier.learning"):
        assert replica.writer.run_once().written == 1
    profile = stored(api)
    assert profile is not None and profile.runs == 1
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_a_restart_does_not_count_finished_pods_again(api: KubeAPI) -> None:
    first = Replica(api, "a", FakeClock(100))
    p1 = run_of("p1", 1)
    first.sees(p1)
    first.writer.run_once()
    first.lease.release()
    # a new process: its first list shows p1 already finished
    second = Replica(api, "a2", FakeClock(100))
    obj = api.get("TaskProfile", NAME, "airflow")
    second.store.relist([obj])
    second.recorder("MODIFIED", "airflow/p1", p1[1])
    result = second.writer.run_once()
    assert (result.recorded, result.known) == (0, 1)
    profile = stored(api)
    assert profile is not None and profile.runs == 1


def test_the_written_object_is_what_the_contract_says(api: KubeAPI) -> None:
    replica = Replica(api, "a", FakeClock(100))
    replica.sees_run("p1", 1)
    replica.writer.run_once()
    obj = api.get("TaskProfile", NAME, "airflow")
    assert obj is not None
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "podtier"}
    assert obj["spec"] == {"dagId": "sales_etl", "taskId": "extract_orders"}
    status = obj["status"]
    assert {
        "runs", "oomKills", "runSeconds", "memoryPeakBytes", "cpuP95Milli", "requests", "limits",
        "tier", "pool", "recommendedTier", "lastRuns", "updatedAt",
    } <= set(status)  # fmt: skip
    assert status["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert status["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert set(status["lastRuns"][0]) >= {
        "runId", "tryNumber", "mapIndex", "exitCode", "reason", "oomKilled", "runSeconds",
        "finishedAt", "memoryLimitBytes", "memoryPeakBytes", "cpuP95Milli",
    }  # fmt: skip
    assert len(orjson.dumps(obj)) < 4096
