"""TaskProfile names: valid DNS labels for any ids, readable, and distinct for distinct tasks
(also when their readable prefixes agree), the same for a task's raw and label ids."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from podtier.webhook.core.matching import airflow_label_value
from podtier.webhook.core.profile import task_key
from podtier.webhook.learning.names import profile_name

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_a_short_task_reads_as_itself() -> None:
    name = profile_name(task_key("airflow", "sales_etl", "extract_orders"))
    assert re.fullmatch(r"sales-etl-extract-orders-[0-9a-f]{10}", name)


@given(st.text(min_size=1, max_size=300), st.text(min_size=1, max_size=300), st.text(max_size=63))
def test_any_ids_give_a_valid_name(dag: str, task: str, namespace: str) -> None:
    name = profile_name(task_key(namespace, dag, task))
    assert len(name) <= 63
    assert DNS_LABEL.fullmatch(name), name


def test_tasks_whose_prefixes_agree_get_different_names() -> None:
    long = "x" * 200
    names = {
        profile_name(task_key("airflow", long + "a", "t")),
        profile_name(task_key("airflow", long + "b", "t")),
        profile_name(task_key("airflow", "a.b", "c")),
        profile_name(task_key("airflow", "a_b", "c")),
        profile_name(task_key("airflow", "a", "b_c")),
        profile_name(task_key("other", "a", "b_c")),
    }
    assert len(names) == 6


def test_the_raw_id_and_its_label_give_the_same_name() -> None:
    raw = "reconcile/" + "ledger_" * 12
    assert profile_name(task_key("ns", raw, "t")) == profile_name(
        task_key("ns", airflow_label_value(raw), "t")
    )
