"""Cleanup against the test API server, through the real `kubernetes` client: it deletes exactly
the old finished Airflow worker pods, at scale within its rate limit, with a uid precondition,
and only on the replica that holds the Lease."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import REGISTRY

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.cleanup.bucket import TokenBucket
from podtier.webhook.cleanup.cleaner import Cleaner, CleanupSettings, PodDeleter
from podtier.webhook.insight.facts import PodFacts
from podtier.webhook.insight.job import Insight
from podtier.webhook.lease import LeaderLease
from podtier.webhook.policy.load import load_policy
from tests.conftest import FakeClock
from tests.kubeapi import KubeAPI
from tests.webhook.headroom.builders import node
from tests.webhook.headroom.feeds import wait_for
from tests.webhook.insight.pods import airflow_pod, plain_pod, watched

HOUR = 3600.0
POLICY = load_policy([DEFAULT_POLICY])


@pytest.fixture
def api() -> Iterator[KubeAPI]:
    with KubeAPI() as server:
        server.put(node("w1"))
        yield server


def cleaner_for(
    api: KubeAPI,
    insight: Insight,
    settings: CleanupSettings,
    *,
    identity: str = "podtier-a",
    lease_clock: FakeClock | None = None,
    bucket_clock: FakeClock | None = None,
) -> Cleaner:
    configuration = client.Configuration(host=api.url)
    configuration.retries = False
    api_client = client.ApiClient(configuration)
    lease = LeaderLease(
        api_client,
        name="podtier-cleanup",
        namespace="podtier",
        identity=identity,
        clock=lease_clock or FakeClock(1000.0),
    )
    bucket_clock = bucket_clock or FakeClock(1000.0)
    return Cleaner(
        insight.census.finished,
        insight.policy,
        PodDeleter(api_client),
        lease,
        settings,
        bucket=TokenBucket(settings.rate, settings.burst, clock=bucket_clock),
        sleep=bucket_clock.sleep,
    )


def old(name: str, phase: str = "Succeeded", **fields: Any) -> dict[str, Any]:
    return airflow_pod(name, phase=phase, node="w1", finished=time.time() - 2 * HOUR, **fields)


KPO = {"kubernetes_pod_operator": "True", "dag_id": "etl", "task_id": "spark"}


# (pod, deleted?) — after = 1 h. Made when a test runs: ages are counted from now, and a long
# session (the real-node suite runs before these) must not age them.
def make_cases() -> list[tuple[str, dict[str, Any], bool]]:
    return [
        ("old-succeeded", old("old-succeeded"), True),
        ("old-failed", old("old-failed", phase="Failed"), True),
        (
            "young",
            airflow_pod("young", phase="Succeeded", node="w1", finished=time.time() - 600),
            False,
        ),
        ("no-finish-time", airflow_pod("no-finish-time", phase="Succeeded", node="w1"), False),
        ("kpo-unchecked", old("kpo-unchecked", labels=dict(KPO)), False),
        ("kpo-checked", old("kpo-checked", labels={**KPO, "already_checked": "True"}), True),
        ("non-airflow", plain_pod("non-airflow", finished=time.time() - 2 * HOUR), False),
        ("running", airflow_pod("running", phase="Running", node="w1"), False),
    ]


def remaining(api: KubeAPI) -> set[str]:
    return {p["metadata"]["name"] for p in api.objects("Pod")}


def deleted_counter(phase: str) -> float:
    return REGISTRY.get_sample_value("podtier_cleanup_deleted_total", {"phase": phase}) or 0.0


def test_deletes_exactly_the_old_finished_worker_pods(
    api: KubeAPI, caplog: pytest.LogCaptureFixture
) -> None:
    cases = make_cases()
    for _, pod, _ in cases:
        api.put(pod)
    expected_kept = {name for name, _, deleted in cases if not deleted}
    before = {phase: deleted_counter(phase) for phase in ("Succeeded", "Failed")}
    with watched(api, POLICY) as (_, insight, _):
        cleaner = cleaner_for(api, insight, CleanupSettings(after=HOUR))
        with caplog.at_level(logging.INFO, logger="podtier.cleanup"):
            result = cleaner.run_once()
        assert sorted(p.name for p in result.deleted) == [
            "kpo-checked",
            "old-failed",
            "old-succeeded",
        ]
        assert remaining(api) == expected_kept
        assert api.delete_count == 3
        wait_for(lambda: len(insight.census.finished()) == 3, what="the watch sees them gone")
        assert cleaner.run_once().deleted == []  # nothing more to do
    assert deleted_counter("Succeeded") - before["Succeeded"] == 2
    assert deleted_counter("Failed") - before["Failed"] == 1
    lines = [r for r in caplog.records if r.getMessage().startswith("cleanup deleted")]
    assert len(lines) == 3
    line = next(r for r in lines if r.pod == "old-failed")  # type: ignore[attr-defined]
    fields = {k: v for k, v in vars(line).items() if k in KEYS_OF_A_POD_LINE}
    assert fields == {
        "namespace": "airflow",
        "pod": "old-failed",
        "dag_id": "etl",
        "task_id": "load_old-failed",
        "phase": "Failed",
        "age_seconds": pytest.approx(2 * HOUR, abs=120),
    }
    assert not {"labels", "annotations", "spec", "uid", "node"} & set(vars(line))


KEYS_OF_A_POD_LINE = {"namespace", "pod", "dag_id", "task_id", "phase", "age_seconds"}


def test_a_pod_recreated_under_the_same_name_is_not_deleted(api: KubeAPI) -> None:
    stored = api.put(old("reused"))
    seen = PodFacts(
        key="airflow/reused",
        namespace="airflow",
        name="reused",
        uid="uid-of-an-older-pod",
        phase="Succeeded",
        tier="medium",
        pool="worker",
        bound=True,
        created=None,
        scheduled=None,
        finished=time.time() - 2 * HOUR,
        dag_id="etl",
        task_id="load",
        labels=stored["metadata"]["labels"],
    )
    with watched(api, POLICY) as (_, insight, _):
        cleaner = cleaner_for(api, insight, CleanupSettings(after=HOUR))
        cleaner.finished = lambda: [seen]
        result = cleaner.run_once()
    assert (result.deleted, result.changed) == ([], 1)
    assert "reused" in remaining(api)


def test_ten_thousand_finished_pods_go_in_bounded_batches_at_the_rate(api: KubeAPI) -> None:
    finished = time.time() - 2 * HOUR
    count = 10_000
    for i in range(count):
        api.put(airflow_pod(f"done-{i:05d}", phase="Succeeded", node="w1", finished=finished))
    cases = make_cases()
    for _, pod, deleted in cases:
        if not deleted:
            api.put(pod)
    settings = CleanupSettings(after=HOUR, rate=500.0, burst=50, batch=2500)
    clock = FakeClock(1000.0)
    with watched(api, POLICY) as (_, insight, _):
        wait_for(lambda: len(insight.census.finished()) == count + 3, timeout=60, what="listed")
        cleaner = cleaner_for(api, insight, settings, bucket_clock=clock)
        stamps: list[float] = []
        deleter = cleaner.deleter

        class Stamping:
            def delete(self, pod: PodFacts) -> str:
                stamps.append(clock.now)
                return deleter.delete(pod)

        cleaner.deleter = Stamping()
        start = clock.now
        rounds = []
        while result := cleaner.run_once().deleted:
            rounds.append(len(result))
    assert api.delete_count == count
    assert rounds == [2500, 2500, 2500, 2500]  # bounded batches
    assert remaining(api) == {name for name, _, deleted in cases if not deleted}
    # the bucket's promise: by any moment t, at most burst + rate * t deletes
    for i, stamp in enumerate(stamps):
        assert i + 1 <= settings.burst + settings.rate * (stamp - start) + 1e-6
    # and no slower than that: the last delete came when its token did
    assert stamps[-1] - start == pytest.approx((count - settings.burst) / settings.rate)


def test_with_two_replicas_only_the_lease_holder_deletes_and_the_other_takes_over(
    api: KubeAPI,
) -> None:
    for i in range(60):
        api.put(old(f"first-{i}"))
    lease_clock = FakeClock(1000.0)  # moved by the test only
    settings = CleanupSettings(after=HOUR, rate=1e6, burst=1000, batch=10)
    with watched(api, POLICY) as (_, insight_a, _), watched(api, POLICY) as (_, insight_b, _):
        replicas = {
            "podtier-a": cleaner_for(
                api, insight_a, settings, identity="podtier-a", lease_clock=lease_clock
            ),
            "podtier-b": cleaner_for(
                api, insight_b, settings, identity="podtier-b", lease_clock=lease_clock
            ),
        }
        with running(replicas) as (deleted, rounds, stop):
            wait_for(
                lambda: not any(n.startswith("first") for n in remaining(api)),
                what="first pods deleted",
            )
            wait_for(lambda: sum(deleted.values()) == 60, what="rounds counted")
            holder = _holder(api)
            follower = next(name for name in replicas if name != holder)
            assert deleted[holder] == 60
            assert deleted[follower] == 0
            stop[holder].set()  # the holder stops (hangs, dies): it renews no more

            for i in range(30):
                api.put(old(f"second-{i}"))
            follower_census = (insight_a if follower == "podtier-a" else insight_b).census
            wait_for(lambda: len(follower_census.finished()) == 30, what="follower sees them")
            seen = rounds[follower]
            wait_for(lambda: rounds[follower] >= seen + 3, what="three follower rounds")
            assert deleted[follower] == 0  # the lease is still the holder's
            assert len(remaining(api)) == 30

            lease_clock.now += 16  # past leaseDurationSeconds (15) on the follower's clock
            wait_for(lambda: deleted[follower] == 30, what="the follower took over")
            assert _holder(api) == follower
            assert remaining(api) == set()
    assert api.delete_count == 90


def _holder(api: KubeAPI) -> str:
    lease = api.get("Lease", "podtier-cleanup", "podtier")
    assert lease is not None
    return str(lease["spec"]["holderIdentity"])


@contextmanager
def running(
    replicas: dict[str, Cleaner],
) -> Iterator[tuple[dict[str, int], dict[str, int], dict[str, threading.Event]]]:
    """Each replica's cleaner in rounds on its own thread; deletes and rounds counted."""
    deleted = dict.fromkeys(replicas, 0)
    rounds = dict.fromkeys(replicas, 0)
    stop = {name: threading.Event() for name in replicas}

    def loop(name: str) -> None:
        while not stop[name].is_set():
            deleted[name] += len(replicas[name].run_once().deleted)
            rounds[name] += 1
            time.sleep(0.005)

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in replicas]
    for thread in threads:
        thread.start()
    try:
        yield deleted, rounds, stop
    finally:
        for event in stop.values():
            event.set()
        for thread in threads:
            thread.join(5)
