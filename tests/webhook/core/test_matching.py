"""Rule matching: namespaces globs, namespaceSelector, pod labels and annotations, and the
Airflow identity (annotations first, then labels as Airflow sanitizes and hashes them)."""

from __future__ import annotations

from typing import Any

import pytest

from podtier.webhook.core.matching import airflow_label_value, first_rule
from podtier.webhook.core.pod import view_pod
from podtier.webhook.policy.load import load_policy_text

POLICY_HEAD = """
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: t}
spec:
  airflowPods:
    - matchLabels: {kubernetes_executor: "True"}
    - matchLabels: {kubernetes_pod_operator: "True"}
  defaultTier: small
  tiers:
    small: {requests: {cpu: 100m}, placement: [p]}
    big: {requests: {cpu: "2"}, placement: [p]}
  pools:
    p: {nodeSelector: {node-type: p}}
  rules:
    - name: under test
      tier: big
      match:
"""

LONG_DAG = "backfill_customer_lifetime_value_by_region_and_product_category_v2"
# What Airflow's make_safe_label_value writes for LONG_DAG: cut to 53 characters, "-", and
# the first 9 hex digits of its MD5.
LONG_DAG_LABEL = "backfill_customer_lifetime_value_by_region_and_produc-4cb135bb7"


def rule_matches(match_yaml: str, pod: dict[str, Any], namespace_labels=None) -> bool:
    indented = "\n".join("        " + line for line in match_yaml.strip().splitlines())
    policy = load_policy_text([("p.yaml", POLICY_HEAD + indented + "\n")])
    view = view_pod(pod, namespace_labels=namespace_labels)
    return first_rule(policy, view) is not None


def executor_pod(namespace="airflow", labels=None, annotations=None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p",
            "namespace": namespace,
            "labels": {
                "kubernetes_executor": "True",
                "dag_id": "sales_etl",
                "task_id": "extract",
                **(labels or {}),
            },
            "annotations": {"dag_id": "sales_etl", "task_id": "extract", **(annotations or {})},
        },
        "spec": {"containers": [{"name": "base"}]},
    }


def kpo_pod(dag_id: str, task_id: str = "transform", namespace="airflow") -> dict[str, Any]:
    """A KubernetesPodOperator pod: the identity only in labels, as Airflow writes them."""
    return {
        "metadata": {
            "name": "k",
            "namespace": namespace,
            "labels": {
                "kubernetes_pod_operator": "True",
                "dag_id": airflow_label_value(dag_id),
                "task_id": airflow_label_value(task_id),
            },
        },
        "spec": {"containers": [{"name": "base"}]},
    }


@pytest.mark.parametrize(
    ("match", "pod", "namespace_labels", "expected"),
    [
        pytest.param("namespaces: [airflow]", executor_pod(), None, True, id="namespace-exact"),
        pytest.param(
            "namespaces: [data-*]", executor_pod("data-eng"), None, True, id="namespace-glob"
        ),
        pytest.param(
            "namespaces: [data-*]", executor_pod("airflow"), None, False, id="namespace-glob-miss"
        ),
        pytest.param(
            "namespaces: [a, 'data-?ng']",
            executor_pod("data-eng"),
            None,
            True,
            id="namespace-second-glob",
        ),
        pytest.param(
            "namespaceSelector: {matchLabels: {team: data}}",
            executor_pod(),
            {"team": "data"},
            True,
            id="ns-selector",
        ),
        pytest.param(
            "namespaceSelector: {matchLabels: {team: data}}",
            executor_pod(),
            {"team": "web"},
            False,
            id="ns-selector-other-value",
        ),
        pytest.param(
            "namespaceSelector: {matchLabels: {team: data}}",
            executor_pod(),
            None,
            False,
            id="ns-labels-unknown",
        ),
        pytest.param(
            "namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: airflow}}",
            executor_pod(),
            None,
            True,
            id="ns-name-label-known-without-labels",
        ),
        pytest.param(
            "namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}",
            executor_pod(),
            {"env": "dev"},
            True,
            id="ns-selector-notin",
        ),
        pytest.param(
            "namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [prod]}]}",
            executor_pod(),
            {"env": "prod"},
            False,
            id="ns-selector-notin-miss",
        ),
        pytest.param(
            "labels: {matchLabels: {team: x}}",
            executor_pod(labels={"team": "x"}),
            None,
            True,
            id="labels",
        ),
        pytest.param(
            "labels: {matchExpressions: [{key: team, operator: Exists}]}",
            executor_pod(),
            None,
            False,
            id="labels-exists-miss",
        ),
        pytest.param(
            "labels: {matchExpressions: [{key: team, operator: DoesNotExist}]}",
            executor_pod(),
            None,
            True,
            id="labels-does-not-exist",
        ),
        pytest.param(
            "annotations: {owner: finance}",
            executor_pod(annotations={"owner": "finance"}),
            None,
            True,
            id="annotation",
        ),
        pytest.param(
            "annotations: {owner: finance}",
            executor_pod(annotations={"owner": "fin"}),
            None,
            False,
            id="annotation-other-value",
        ),
        pytest.param(
            "annotations: {owner: finance}",
            executor_pod(labels={"owner": "finance"}),
            None,
            False,
            id="annotation-not-a-label",
        ),
        pytest.param("dagId: sales_*", executor_pod(), None, True, id="dag-glob"),
        pytest.param("dagId: sales", executor_pod(), None, False, id="dag-exact-miss"),
        pytest.param("taskId: ext?act", executor_pod(), None, True, id="task-glob"),
        pytest.param(
            "{dagId: sales_etl, taskId: load}",
            executor_pod(),
            None,
            False,
            id="all-conditions-must-hold",
        ),
        pytest.param(
            "dagId: sales_etl",
            executor_pod(labels={"dag_id": "other"}),
            None,
            True,
            id="annotation-wins-over-label",
        ),
        pytest.param("dagId: sales_*", kpo_pod("sales_etl"), None, True, id="kpo-label-only"),
        pytest.param(
            "dagId: backfill_*", kpo_pod(LONG_DAG), None, True, id="kpo-hashed-prefix-glob"
        ),
        pytest.param(
            f"dagId: {LONG_DAG}", kpo_pod(LONG_DAG), None, True, id="kpo-hashed-exact-name"
        ),
        pytest.param(
            f"dagId: {LONG_DAG}x", kpo_pod(LONG_DAG), None, False, id="kpo-hashed-other-name"
        ),
        pytest.param(
            "dagId: '*_v2'",
            kpo_pod(LONG_DAG),
            None,
            False,
            id="kpo-hashed-suffix-glob-cannot-see-cut-end",
        ),
        pytest.param(
            "taskId: 'load/raw'",
            kpo_pod("d", task_id="load/raw"),
            None,
            True,
            id="kpo-sanitized-exact-name",
        ),
        pytest.param(
            "taskId: 'load*'", kpo_pod("d", task_id="load/raw"), None, True, id="kpo-sanitized-glob"
        ),
    ],
)
def test_rule_match(match: str, pod, namespace_labels, expected: bool) -> None:
    assert rule_matches(match, pod, namespace_labels) is expected


def test_label_value_is_what_airflow_writes() -> None:
    assert airflow_label_value("sales_etl") == "sales_etl"  # safe values are kept as they are
    assert airflow_label_value(LONG_DAG) == LONG_DAG_LABEL
    cut = airflow_label_value("load/raw")
    assert cut.startswith("loadraw-") and len(cut) == len("loadraw-") + 9


def test_first_matching_rule_wins_in_file_order() -> None:
    text = POLICY_HEAD.replace("    - name: under test\n      tier: big\n      match:\n", "")
    text += """    - {name: first, match: {namespaces: ["data-*"]}, tier: big}
    - {name: second, match: {namespaces: [data-eng]}, tier: small}
"""
    policy = load_policy_text([("p.yaml", text)])
    rule = first_rule(policy, view_pod(executor_pod("data-eng")))
    assert rule is not None and rule.name == "first"
