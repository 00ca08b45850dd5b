"""The outcome of a finished Airflow pod, read from the object the watch delivers: exit code
and reason from `state.terminated`, run time, the base container's requests and limits,
podtier's tier and pool, and whether podtier had raised its memory."""

from __future__ import annotations

import pytest

from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.core.pod import view_pod
from podtier.webhook.learning.outcome import outcome_of
from tests.webhook.core.fakes import POLICY
from tests.webhook.learning.pods import T0, ended, running, worker_pod

GI = 2**30


def test_an_oom_killed_worker() -> None:
    pod = ended(worker_pod(try_number=2, map_index=3), started=T0, finished=T0 + 125)
    outcome = outcome_of(pod, POLICY)
    assert outcome is not None
    assert outcome.oom_killed and outcome.reason == "OOMKilled" and outcome.exit_code == 137
    assert outcome.run_seconds == 125
    assert outcome.memory_limit_bytes == 4 * GI
    assert outcome.requests == {"cpu": 1000, "memory": 2 * GI * 1000}
    assert (outcome.tier, outcome.pool) == ("medium", "worker")
    i = outcome.instance
    assert (i.dag_id, i.task_id, i.try_number, i.map_index, i.kind) == (
        "sales_etl",
        "extract_orders",
        2,
        3,
        "executor",
    )
    assert outcome.uid == pod["metadata"]["uid"]
    assert outcome.escalated_bytes is None


def test_a_raised_pod_says_so() -> None:
    pod = worker_pod(annotations={"podtier.io/escalated-memory": "4916Mi"})
    outcome = outcome_of(ended(pod, reason="Completed", exit_code=0), POLICY)
    assert outcome is not None
    assert outcome.escalated_bytes == 4916 * 2**20
    assert not outcome.oom_killed and outcome.exit_code == 0


def test_with_a_seal_only_a_sealed_raise_counts() -> None:
    """serve's recorder has the escalation seal: a pod created with forged escalation
    annotations (podtier down, or a copied spec) passes no raise on to its try's next pod."""
    seal = EscalationSeal(b"k" * 32)
    forged = worker_pod(annotations={"podtier.io/escalated-memory": "60Gi"})
    forged["metadata"]["annotations"]["podtier.io/escalation-seal"] = "v1.forged"
    outcome = outcome_of(ended(forged), POLICY, seal)
    assert outcome is not None and outcome.escalated_bytes is None
    sealed_pod = worker_pod(annotations={"podtier.io/escalated-memory": "4916Mi"})
    notes = sealed_pod["metadata"]["annotations"]
    signed = seal.sign(view_pod(sealed_pod), notes.get("podtier.io/tier", ""), "4916Mi")
    assert signed is not None
    notes["podtier.io/escalation-seal"] = signed
    outcome = outcome_of(ended(sealed_pod), POLICY, seal)
    assert outcome is not None and outcome.escalated_bytes == 4916 * 2**20
    other_key = outcome_of(ended(sealed_pod), POLICY, EscalationSeal(b"x" * 32))
    assert other_key is not None and other_key.escalated_bytes is None


def test_the_pool_comes_from_the_node_selector_without_podtier_annotations() -> None:
    pod = worker_pod()
    del pod["metadata"]["annotations"]["podtier.io/pool"]
    outcome = outcome_of(ended(pod), POLICY)
    assert outcome is not None and outcome.pool == "worker"


@pytest.mark.parametrize(
    "pod",
    [
        pytest.param(worker_pod(), id="pending"),
        pytest.param(running(worker_pod()), id="running"),
        pytest.param(
            {**ended(worker_pod()), "metadata": {"name": "x", "labels": {"app": "web"}}},
            id="not-airflow",
        ),
    ],
)
def test_no_outcome_before_the_end_or_for_other_pods(pod) -> None:
    assert outcome_of(pod, POLICY) is None


def test_a_sidecar_ending_is_not_the_end() -> None:
    pod = running(worker_pod())
    pod["status"]["containerStatuses"].append(
        {
            "name": "sidecar",
            "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-01-01T00:00:00Z"}},
        }
    )
    assert outcome_of(pod, POLICY) is None
