"""The escalation seal: podtier's raise is believed only for the pod, try, memory and tier it
was made for, and only under podtier's key."""

from __future__ import annotations

import base64
import copy
from typing import Any

import jsonpatch
import orjson
import pytest

from podtier.webhook.core import admission
from podtier.webhook.core.escalation_seal import EscalationSeal, SealKeyError, sealed
from podtier.webhook.core.memo import AdmissionMemo
from podtier.webhook.core.pod import view_pod
from tests.conftest import review_of
from tests.webhook.core.fakes import POLICY, UNKNOWN

KEY = b"the-key-only-podtier-holds-32-bytes!"
SEAL = EscalationSeal(KEY)


def escalated(memory: str = "4916Mi", tier: str = "heavy", **labels: str) -> dict[str, Any]:
    pod = {
        "metadata": {
            "name": "etl-load",
            "namespace": "airflow",
            "labels": {
                "kubernetes_executor": "True",
                "dag_id": "etl",
                "task_id": "load",
                "run_id": "scheduled__2026-12-01",
                "try_number": "2",
                **labels,
            },
            "annotations": {"podtier.io/tier": tier, "podtier.io/escalated-memory": memory},
        },
        "spec": {"containers": [{"name": "base", "image": "x"}]},
    }
    view = view_pod(pod, "airflow")
    pod["metadata"]["annotations"]["podtier.io/escalation-seal"] = SEAL.sign(view, tier, memory)
    return pod


def believed(pod: dict[str, Any], seal: EscalationSeal = SEAL) -> int | None:
    return seal.verified_memory(view_pod(pod, pod["metadata"].get("namespace", "airflow")))


def test_podtier_s_own_seal_is_believed() -> None:
    assert believed(escalated("4916Mi")) == 4916 * 2**20 * 1000


def _with(pod: dict[str, Any], where: str, key: str, value: str) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    out["metadata"][where][key] = value
    return out


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda p: _with(p, "annotations", "podtier.io/escalated-memory", "60Gi"), id="memory"
        ),
        pytest.param(lambda p: _with(p, "annotations", "podtier.io/tier", "gpu"), id="tier"),
        pytest.param(lambda p: _with(p, "labels", "try_number", "3"), id="next-try-stale"),
        pytest.param(lambda p: _with(p, "labels", "run_id", "manual__x"), id="other-run"),
        pytest.param(lambda p: _with(p, "labels", "task_id", "other"), id="other-task"),
        pytest.param(lambda p: _with(p, "labels", "map_index", "3"), id="other-map-index"),
        pytest.param(lambda p: {**p, "metadata": {**p["metadata"], "namespace": "x"}}, id="ns"),
        pytest.param(
            lambda p: _with(p, "annotations", "podtier.io/escalation-seal", "v1.AAAA"), id="made-up"
        ),
    ],
)
def test_a_seal_for_anything_else_is_not_believed(forge) -> None:
    assert believed(forge(escalated())) is None


def test_another_key_believes_nothing() -> None:
    assert believed(escalated(), EscalationSeal(b"x" * 32)) is None


def test_no_seal_no_escalation() -> None:
    pod = escalated()
    del pod["metadata"]["annotations"]["podtier.io/escalation-seal"]
    assert believed(pod) is None


def test_a_pod_without_a_task_instance_gets_no_seal() -> None:
    pod = {"metadata": {"name": "web", "labels": {}}, "spec": {"containers": []}}
    notes = {"podtier.io/tier": "heavy", "podtier.io/escalated-memory": "5Gi"}
    assert sealed(notes, view_pod(pod, "airflow"), SEAL) == notes


def test_a_short_key_is_refused_and_never_printed() -> None:
    with pytest.raises(SealKeyError, match="has 5 bytes; at least 32"):
        EscalationSeal(b"short")
    assert "the-key" not in repr(SEAL)


def test_a_pod_with_forged_escalation_annotations_gets_no_more_than_its_tier() -> None:
    """Every annotation podtier would write on an escalated pod, forged (seal included, made
    with a guessed key): the mutation decides afresh and drops the escalation, and validation
    holds the pod to tier heavy's 8Gi."""
    forged = escalated("60Gi", "heavy")
    forged["metadata"]["annotations"] |= {
        "podtier.io/pool": "compute",
        "podtier.io/policy": POLICY.ident,
        "podtier.io/escalation-seal": EscalationSeal(b"g" * 32).sign(
            view_pod(forged, "airflow"), "heavy", "60Gi"
        ),
    }
    forged["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "4", "memory": "60Gi"},
    }
    request = review_of(forged)["request"]
    answer = admission.mutate(request, POLICY, UNKNOWN, None, None, SEAL)
    ops = orjson.loads(base64.b64decode(answer.review["response"]["patch"]))
    after = jsonpatch.apply_patch(copy.deepcopy(forged), ops)
    notes = after["metadata"]["annotations"]
    assert "podtier.io/escalated-memory" not in notes
    assert "podtier.io/escalation-seal" not in notes
    checked = admission.validate(review_of(after)["request"], POLICY, None, SEAL)
    assert checked.outcome == "denied"
    assert (
        "memory limit 60Gi is above tier heavy's limit 8Gi"
        in (checked.review["response"]["status"]["message"])
    )
    # the forged pod as it came, straight to validation: the same answer
    assert admission.validate(request, POLICY, None, SEAL).outcome == "denied"


def test_a_stale_seal_is_stripped_even_where_the_memo_saw_its_pod_before() -> None:
    """The memo leaves run ids out of its key; a sealed pod is never answered from it, so the
    seal of try 2 copied onto try 3 does not ride on try 2's remembered answer."""
    genuine = escalated("9Gi", "heavy")
    genuine["metadata"]["annotations"] |= {
        "podtier.io/pool": "compute",
        "podtier.io/policy": POLICY.ident,
    }
    genuine["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "4", "memory": "9Gi"},
    }
    memo = AdmissionMemo(POLICY, SEAL)

    def annotations_after(pod: dict[str, Any]) -> dict[str, str]:
        answer = memo.mutate(review_of(pod)["request"], UNKNOWN)
        ops = orjson.loads(base64.b64decode(answer.review["response"]["patch"]))
        notes: dict[str, str] = jsonpatch.apply_patch(copy.deepcopy(pod), ops)["metadata"][
            "annotations"
        ]
        return notes

    kept = annotations_after(genuine)  # podtier's own, reinvoked: its escalation stays
    assert kept["podtier.io/escalated-memory"] == "9Gi"
    stale = copy.deepcopy(genuine)
    stale["metadata"]["labels"]["try_number"] = "3"
    for _ in range(2):
        notes = annotations_after(stale)
        assert "podtier.io/escalated-memory" not in notes
        assert "podtier.io/escalation-seal" not in notes
    assert annotations_after(genuine)["podtier.io/escalated-memory"] == "9Gi"
