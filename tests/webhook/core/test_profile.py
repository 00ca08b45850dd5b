"""A pod's task identity: the executor's annotations first, labels second, and a long id that
Airflow cut and hashed into a label names the same task as its raw form."""

from __future__ import annotations

import pytest

from podtier.webhook.core.matching import airflow_label_value
from podtier.webhook.core.pod import view_pod
from podtier.webhook.core.profile import pod_instance, task_instance, task_key
from tests.conftest import load_review

LONG_DAG = "nightly_" + "revenue_reconciliation_" * 4 + "v2"
LONG_RUN = "manual__2026-11-26T05:00:00+00:00"


@pytest.mark.parametrize(
    ("fixture", "dag", "task", "run_key", "try_number", "map_index", "kind"),
    [
        pytest.param(
            "a",
            "sales_etl",
            "extract_orders",
            airflow_label_value(LONG_RUN),
            1,
            -1,
            "executor",
            id="executor-annotations",
        ),
        pytest.param(
            "e",
            "partitioned_ingest",
            "ingest_partition",
            airflow_label_value(LONG_RUN),
            1,
            7,
            "executor",
            id="mapped-task",
        ),
        pytest.param(
            "j",
            "kpo_transform",
            "transform_sales_data",
            "manual__2026-11-26T0500000000-51e150d46",
            1,
            -1,
            "kpo",
            id="kpo-labels-only",
        ),
    ],
)
def test_identity_of_airflow_built_pods(
    fixture: str,
    dag: str,
    task: str,
    run_key: str,
    try_number: int,
    map_index: int,
    kind: str,
) -> None:
    request = load_review(fixture)["request"]
    instance = pod_instance(view_pod(request["object"], request["namespace"]))
    assert instance is not None
    assert (instance.key.dag, instance.key.task) == (dag, task)
    assert instance.run_key == run_key
    assert (instance.try_number, instance.map_index, instance.kind) == (
        try_number,
        map_index,
        kind,
    )


def test_the_executor_run_id_and_the_kpo_label_name_the_same_run() -> None:
    """The KPO fixture's run_id label is what Airflow makes of the raw run_id annotation."""
    kpo = load_review("j")["request"]["object"]["metadata"]["labels"]["run_id"]
    executor = load_review("a")["request"]["object"]["metadata"]["annotations"]["run_id"]
    assert airflow_label_value(executor) == kpo


def test_a_long_id_cut_into_a_label_is_the_same_task_as_its_raw_form() -> None:
    raw = task_instance("airflow", {}, {"dag_id": LONG_DAG, "task_id": "load"})
    label = airflow_label_value(LONG_DAG)
    assert len(label) == 63 and label != LONG_DAG  # cut and hashed
    cut = task_instance("airflow", {"dag_id": label, "task_id": "load"}, {})
    assert raw is not None and cut is not None
    assert raw.key == cut.key == task_key("airflow", LONG_DAG, "load")
    assert raw.dag_id == LONG_DAG and cut.dag_id == label  # the raw id is kept where known


@pytest.mark.parametrize(
    ("labels", "annotations"),
    [
        pytest.param({"task_id": "t"}, {}, id="no-dag-id"),
        pytest.param({"dag_id": "d"}, {"dag_id": "d"}, id="no-task-id"),
        pytest.param({}, {"dag_id": "", "task_id": ""}, id="empty"),
    ],
)
def test_no_identity_without_dag_and_task(labels, annotations) -> None:
    assert task_instance("airflow", labels, annotations) is None


def test_odd_numbers_fall_back_to_defaults() -> None:
    instance = task_instance(
        "ns", {}, {"dag_id": "d", "task_id": "t", "try_number": "x", "map_index": "-5"}
    )
    assert instance is not None
    assert (instance.try_number, instance.map_index) == (1, -1)
