"""What the report reads of raw Pods, PodMetrics and TaskProfiles, and the errors that name
the object and the field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podtier.webhook.core.quantity import QuantityError, to_milli
from podtier.webhook.report.facts import (
    FactError,
    Usage,
    metrics_usage,
    pod_run,
    task_profile,
    usage_milli,
)
from tests.webhook.insight.pods import plain_pod, stamp
from tests.webhook.report.builders import GIB, HOUR, NOW, pod_metrics, priced_policy, raw_pod
from tests.webhook.report.builders import task_profile as raw_profile

POLICY = priced_policy()


def test_a_finished_pod_keeps_its_times_requests_task_and_run() -> None:
    pod = raw_pod(
        "a",
        task="load",
        created=NOW - 3 * HOUR,
        scheduled=NOW - 3 * HOUR + 30,
        started=NOW - 3 * HOUR + 31,
        finished=NOW - HOUR,
        cpu="1500m",
        memory="3Gi",
        gpus="2",
        run_id="scheduled__2027-01-15",
        try_number="2",
    )
    run = pod_run(pod, POLICY)
    assert run is not None
    assert (run.key, run.task, run.run) == (
        "airflow/a",
        ("airflow", "etl", "load"),
        ("scheduled__2027-01-15", 2, -1),
    )
    assert (run.tier, run.pool, run.phase, run.waiting) == ("medium", "worker", "Succeeded", False)
    assert (run.created, run.bound, run.started, run.finished) == (
        NOW - 3 * HOUR,
        NOW - 3 * HOUR + 30,
        NOW - 3 * HOUR + 31,
        NOW - HOUR,
    )
    assert (run.cpu, run.memory, run.gpu, run.oom_killed) == (1500, 3 * GIB, 2, False)


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(
            raw_pod("oom", phase="Failed", started=NOW - 60, finished=NOW, reason="OOMKilled"),
            ("Failed", False, True),
            id="oom-killed",
        ),
        pytest.param(
            raw_pod("queued", phase="Pending", node=""),
            ("Pending", True, False),
            id="waiting-for-a-node",
        ),
        pytest.param(
            raw_pod("pulling", phase="Pending", started=NOW - 30),
            ("Pending", False, False),
            id="bound-and-pulling",
        ),
    ],
)
def test_phase_waiting_and_oom(pod, expected) -> None:
    run = pod_run(pod, POLICY)
    assert run is not None
    assert (run.phase, run.waiting, run.oom_killed) == expected


def test_a_restarted_container_killed_before_counts_as_oom_killed() -> None:
    pod = raw_pod("r", phase="Running", started=NOW - 60)
    pod["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "OOMKilled", "exitCode": 137}
    }
    run = pod_run(pod, POLICY)
    assert run is not None and run.oom_killed


def test_bound_without_a_scheduled_condition_waited_until_it_started() -> None:
    run = pod_run(raw_pod("b", phase="Running", started=NOW - 10), POLICY)
    assert run is not None and run.bound == NOW - 10


def test_the_pool_comes_from_the_node_selector_when_the_annotation_is_missing() -> None:
    run = pod_run(raw_pod("n", pool=None), POLICY)  # nodeSelector node-type: worker
    assert run is not None and run.pool == "worker"


def test_a_pod_that_is_not_an_airflow_pod_is_none() -> None:
    assert pod_run(plain_pod("web"), POLICY) is None


def test_unreadable_requests_name_the_pod_and_field() -> None:
    pod = raw_pod("bad", cpu="lots")
    with pytest.raises(FactError, match=r"Pod airflow/bad: spec.containers\[0\].resources"):
        pod_run(pod, POLICY)


def test_pod_metrics_sum_their_containers() -> None:
    item = pod_metrics("a", "250m", "512Mi", at=NOW)
    item["containers"].append({"name": "sidecar", "usage": {"cpu": "5000000n", "memory": "1Mi"}})
    assert metrics_usage(item) == ("airflow/a", Usage(255, 513 * 2**20), NOW)
    item["containers"][1]["usage"]["memory"] = "much"
    with pytest.raises(FactError, match=r"PodMetrics airflow/a: containers\[1\].usage.memory"):
        metrics_usage(item)


def test_a_task_profile_as_the_learning_work_writes_it() -> None:
    raw = raw_profile(
        "load",
        runs=40,
        oom_kills=3,
        run_seconds=7200.5,
        memory_peak=3 * GIB,
        cpu_p95=800,
        requests={"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
        tier="heavy",
        pool="compute",
        recommended="medium",
        last_runs=[
            {
                "runId": "r1",
                "tryNumber": 2,
                "mapIndex": 3,
                "cpuP95Milli": 700,
                "memoryPeakBytes": GIB,
            },
            {
                "runId": "r2",
                "tryNumber": 1,
                "mapIndex": -1,
                "cpuP95Milli": None,
                "memoryPeakBytes": None,
            },
        ],
        updated=NOW,
    )
    profile = task_profile(raw)
    assert profile.task == ("airflow", "etl", "load")
    assert (profile.runs, profile.oom_kills, profile.run_seconds) == (40, 3, 7200.5)
    assert (profile.memory_peak, profile.cpu_p95) == (3 * GIB, 800)
    assert (profile.cpu, profile.memory, profile.gpu) == (2000, 4 * GIB, 1)
    assert (profile.tier, profile.pool, profile.recommended_tier) == ("heavy", "compute", "medium")
    assert profile.last_runs == {
        ("r1", 2, 3): Usage(700, GIB),
        ("r2", 1, -1): Usage(None, None),
    }
    assert profile.updated == NOW


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        pytest.param("runs", "many", 'status.runs: "many" is not a whole number', id="runs"),
        pytest.param("runSeconds", True, "status.runSeconds: True is not a number", id="seconds"),
        pytest.param(
            "requests", {"memory": "lots"}, "status.requests.memory", id="request-quantity"
        ),
        pytest.param("lastRuns", ["x"], "status.lastRuns[0]: expected an object", id="last-runs"),
    ],
)
def test_a_broken_profile_names_itself_and_the_field(field, value, says) -> None:
    raw = raw_profile("load")
    raw["status"][field] = value
    with pytest.raises(FactError) as err:
        task_profile(raw)
    assert str(err.value).startswith(f"TaskProfile airflow/{raw['metadata']['name']}: ")
    assert says in str(err.value)


def test_stamp_round_trips() -> None:  # the builders' times are whole seconds
    assert stamp(NOW).endswith("Z")


@given(
    number=st.integers(min_value=0, max_value=10**18 - 1),
    suffix=st.sampled_from(["", "n", "u", "m", "k", "Ki", "Mi", "Gi"]),
)
def test_usage_quantities_read_fast_equal_the_library(number: int, suffix: str) -> None:
    text = f"{number}{suffix}"
    try:
        expected = to_milli(text)
    except QuantityError:
        with pytest.raises(FactError, match="too large"):
            usage_milli(text, "x")
        return
    assert usage_milli(text, "x") == expected


@pytest.mark.parametrize("text", ["1.5", "2e3", "1Ti", "+5m", "0.5Gi"])
def test_other_usage_spellings_go_to_the_library(text: str) -> None:
    assert usage_milli(text, "x") == to_milli(text)


def test_the_report_refuses_a_profile_learning_refuses() -> None:
    """One reader for both: a profile named for another task (or forged) counts nowhere."""
    raw = raw_profile("load")
    raw["metadata"]["name"] = "etl-extract-0123456789"
    with pytest.raises(FactError, match="is not the name of its task"):
        task_profile(raw)
