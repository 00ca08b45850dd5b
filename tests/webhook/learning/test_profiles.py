"""TaskProfile objects: a profile survives the round trip through its object; hostile objects
(garbage fields, huge values, missing ids, a name that is not its task's) are refused with a
message naming the field; fields a newer podtier adds are skipped."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podtier.webhook.core.profile import Histogram, RunRecord, TaskProfile, task_key
from podtier.webhook.learning.names import profile_name
from podtier.webhook.learning.profiles import ProfileError, parse_profile, profile_object

KEY = task_key("airflow", "sales_etl", "extract_orders")
PROFILE = TaskProfile(
    namespace="airflow",
    name=profile_name(KEY),
    dag_id="sales_etl",
    task_id="extract_orders",
    runs=7,
    oom_kills=2,
    run_seconds=1234.5,
    memory_peak_bytes=3 * 2**30,
    cpu_p95_milli=850,
    requests={"cpu": 1000, "memory": 2 * 2**30 * 1000},
    limits={"cpu": 2000, "memory": 4 * 2**30 * 1000},
    tier="medium",
    pool="worker",
    recommended_tier="heavy",
    last_runs=(
        RunRecord(
            run_id="manual__2026-11-26T05:00:00+00:00",
            try_number=2,
            map_index=-1,
            exit_code=137,
            reason="OOMKilled",
            oom_killed=True,
            run_seconds=60.0,
            finished_at=1_764_133_500.0,
            memory_limit_bytes=4 * 2**30,
            memory_peak_bytes=None,
            cpu_p95_milli=None,
            pod_uid="3f1c",
            kind="executor",
            escalated_bytes=None,
        ),
    ),
    updated_at="2026-11-26T05:05:00Z",
    memory_histogram=Histogram(1_764_133_500.0, ((157, 3.5), (170, 1.0))),
    cpu_histogram=Histogram(1_764_133_500.0, ((139, 4.5),)),
    resource_version="42",
)


def good() -> dict[str, Any]:
    obj = profile_object(PROFILE)
    return copy.deepcopy(obj)


def test_round_trip() -> None:
    obj = good()
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "podtier"}
    assert obj["status"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert obj["status"]["lastRuns"][0]["finishedAt"] == "2025-11-26T05:05:00Z"
    assert parse_profile(obj) == PROFILE


def test_fields_a_newer_version_adds_are_skipped() -> None:
    obj = good()
    obj["status"]["somethingNew"] = {"x": 1}
    obj["status"]["lastRuns"][0]["alsoNew"] = True
    assert parse_profile(obj) == PROFILE


def at(path: tuple[Any, ...], value: Any):
    def apply(obj: dict[str, Any]) -> None:
        node = obj
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return apply


DELETE = object()

HOSTILE = [
    pytest.param(at(("spec", "dagId"), DELETE), "spec.dagId", id="missing-dag-id"),
    pytest.param(at(("spec", "taskId"), ""), "spec.taskId", id="empty-task-id"),
    pytest.param(at(("spec",), None), "spec: expected an object", id="no-spec"),
    pytest.param(at(("spec", "dagId"), "other_dag"), "metadata.name", id="ids-of-another-task"),
    pytest.param(at(("status", "runs"), "many"), "status.runs", id="runs-string"),
    pytest.param(at(("status", "runs"), -1), "status.runs", id="runs-negative"),
    pytest.param(
        at(("status", "oomKills"), 99), "more than status.runs", id="more-kills-than-runs"
    ),
    pytest.param(
        at(("status", "memoryPeakBytes"), 10**30), "status.memoryPeakBytes", id="huge-peak"
    ),
    pytest.param(at(("status", "cpuP95Milli"), 1.5), "status.cpuP95Milli", id="cpu-float"),
    pytest.param(at(("status", "runSeconds"), float("nan")), "status.runSeconds", id="nan"),
    pytest.param(
        at(("status", "requests"), {"cpu": "lots"}), "status.requests.cpu", id="bad-quantity"
    ),
    pytest.param(at(("status", "tier"), "x" * 500), "status.tier", id="long-tier"),
    pytest.param(at(("status", "recommendedTier"), 3), "status.recommendedTier", id="tier-number"),
    pytest.param(at(("status", "lastRuns"), [{}] * 11), "status.lastRuns", id="too-many-runs"),
    pytest.param(at(("status", "lastRuns"), "all"), "status.lastRuns", id="runs-not-a-list"),
    pytest.param(
        at(("status", "lastRuns", 0, "finishedAt"), "yesterday"),
        "status.lastRuns[0].finishedAt",
        id="bad-time",
    ),
    pytest.param(
        at(("status", "lastRuns", 0, "oomKilled"), "yes"),
        "status.lastRuns[0].oomKilled",
        id="oom-string",
    ),
    pytest.param(
        at(("status", "lastRuns", 0, "memoryLimitBytes"), 2**60),
        "status.lastRuns[0].memoryLimitBytes",
        id="huge-limit",
    ),
    pytest.param(
        at(("status", "lastRuns", 0, "podKind"), "daemon"),
        "status.lastRuns[0].podKind",
        id="bad-kind",
    ),
    pytest.param(
        at(("status", "memoryHistogram", "buckets"), [[1, 1.0]] * 500),
        "status.memoryHistogram.buckets",
        id="histogram-too-big",
    ),
    pytest.param(
        at(("status", "cpuHistogram", "buckets"), [["a", 1]]),
        "status.cpuHistogram.buckets[0][0]",
        id="histogram-garbage",
    ),
    pytest.param(at(("metadata", "name"), None), "metadata.name", id="no-name"),
]


@pytest.mark.parametrize(("edit", "where"), HOSTILE)
def test_hostile_objects_are_refused_naming_the_field(edit, where: str) -> None:
    obj = good()
    edit(obj)
    with pytest.raises(ProfileError, match=None) as caught:
        parse_profile(obj)
    assert where in str(caught.value)


@pytest.mark.parametrize("obj", [None, [], "profile", 3])
def test_not_an_object(obj: Any) -> None:
    with pytest.raises(ProfileError, match="expected a TaskProfile object"):
        parse_profile(obj)
