"""What a task's profile changes in the decision: the OOM escalation on a retry (and on the
provider's relaunch with the same try_number), and right-sizing in `recommend` and `apply`
mode, each as a table of cases; the patch applied with jsonpatch, and validation of the
result."""

from __future__ import annotations

import base64
import copy
from typing import Any

import jsonpatch
import orjson
import pytest
import yaml

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core import admission
from podtier.webhook.core.decide import decide
from podtier.webhook.core.escalation_seal import EscalationSeal
from podtier.webhook.core.pod import view_pod
from podtier.webhook.core.profile import (
    ProfilesStatus,
    RunRecord,
    StaticProfiles,
    TaskProfile,
    task_key,
)
from podtier.webhook.policy.load import load_policy_text
from tests.conftest import review_of
from tests.webhook.core.fakes import EXECUTOR_LABELS, POLICY, UNKNOWN, FakeCapacity, airflow_pod

GI = 2**30
MI = 2**20
RUN = "scheduled__2026-11-26T05:00:00+00:00"


def run(
    try_number: int = 1,
    *,
    oom: bool = True,
    limit: int | None = 4 * GI,
    run_id: str = RUN,
    map_index: int = -1,
    kind: str = "executor",
    escalated: int | None = None,
    at: float = 1_000.0,
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        try_number=try_number,
        map_index=map_index,
        exit_code=137 if oom else 0,
        reason="OOMKilled" if oom else "Completed",
        oom_killed=oom,
        run_seconds=60.0,
        finished_at=at + try_number,
        memory_limit_bytes=limit,
        memory_peak_bytes=None,
        cpu_p95_milli=None,
        kind=kind,
        escalated_bytes=escalated,
    )


def profiles(*runs: RunRecord, **stats: Any) -> StaticProfiles:
    profile = TaskProfile(
        namespace="airflow",
        name="sales-etl-extract-orders-0123456789",
        dag_id="sales_etl",
        task_id="extract_orders",
        runs=max(len(runs), stats.pop("runs", 0)),
        last_runs=tuple(runs),
        **stats,
    )
    return StaticProfiles({task_key("airflow", "sales_etl", "extract_orders"): profile})


def retry(
    try_number: int = 2,
    *,
    labels: dict[str, str] | None = None,
    resources: dict[str, Any] | None = None,
    map_index: int | None = None,
) -> dict[str, Any]:
    """The executor's pod for a try of the task instance (annotations carry the raw ids)."""
    notes = {
        "dag_id": "sales_etl",
        "task_id": "extract_orders",
        "run_id": RUN,
        "try_number": str(try_number),
    }
    if map_index is not None:
        notes["map_index"] = str(map_index)
    return airflow_pod(
        resources=resources, labels={**EXECUTOR_LABELS, **(labels or {})}, annotations=notes
    )


def policy_with(learning: dict[str, Any] | None = None, rules: list[Any] | None = None):
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    if learning is not None:
        doc["spec"]["learning"] = learning
    if rules is not None:
        doc["spec"]["rules"] = rules
    return load_policy_text([("learning.yaml", yaml.safe_dump(doc, sort_keys=False))])


SEAL = EscalationSeal(b"test-key-of-podtier-only-32-bytes")


def mutated(pod: dict[str, Any], policy=POLICY, view=None, capacity=UNKNOWN) -> dict[str, Any]:
    answer = admission.mutate(review_of(pod)["request"], policy, capacity, None, view, SEAL)
    encoded = answer.review["response"].get("patch")
    patch = orjson.loads(base64.b64decode(encoded)) if encoded else []
    return jsonpatch.apply_patch(copy.deepcopy(pod), patch)


def base_memory(pod: dict[str, Any]) -> tuple[str | None, str | None]:
    resources = pod["spec"]["containers"][0].get("resources") or {}
    return (resources.get("requests") or {}).get("memory"), (resources.get("limits") or {}).get(
        "memory"
    )


EXPLICIT = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}

# (pod, profiles, policy, tier, base memory (request, limit), reason part or None = no raise)
ESCALATIONS = [
    pytest.param(
        retry(2),
        profiles(run(1, limit=4 * GI)),
        POLICY,
        "heavy",
        ("4Gi", "8Gi"),
        "previous try OOMKilled at limit 4Gi",
        id="medium-killed-at-4Gi-next-try-heavy",
    ),
    pytest.param(
        retry(2, labels={"tier": "light"}),
        profiles(run(1, limit=1 * GI)),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),
        "previous try OOMKilled at limit 1Gi",
        id="asked-light-killed-moves-up-to-medium",
    ),
    pytest.param(
        retry(2, labels={"tier": "heavy"}),
        profiles(run(1, limit=8 * GI)),
        POLICY,
        "heavy",
        ("4Gi", "9831Mi"),  # 1.2 x 8Gi, rounded up to MiB; gpu tier not used for a cpu task
        "previous try OOMKilled at limit 8Gi",
        id="no-tier-covers-heavy-gets-more-memory",
    ),
    pytest.param(
        retry(3),
        profiles(run(1, limit=4 * GI), run(2, limit=8 * GI, escalated=4916 * MI)),
        POLICY,
        "heavy",
        ("4Gi", "9831Mi"),
        "previous try OOMKilled at limit 8Gi",
        id="no-tier-covers-the-largest-one-gets-more-memory",
    ),
    pytest.param(
        retry(2, labels={"tier": "heavy"}),
        profiles(run(1, limit=60 * GI)),
        POLICY,
        "heavy",
        ("4Gi", "64Gi"),
        "capped at the ceiling 64Gi",
        id="capped-at-the-ceiling",
    ),
    pytest.param(
        retry(2),
        profiles(run(1, limit=100 * MI)),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),  # 100Mi + 256Mi: medium already gives more
        "previous try OOMKilled at limit 100Mi",
        id="small-limit-plus-256Mi-within-the-tier",
    ),
    pytest.param(
        retry(1),
        profiles(run(1, limit=4 * GI)),
        POLICY,
        "heavy",
        ("4Gi", "8Gi"),
        "previous pod of this try OOMKilled at limit 4Gi",
        id="relaunch-same-try-after-a-kill",
    ),
    pytest.param(
        retry(2, labels={"tier": "heavy"}),
        profiles(run(1, limit=8 * GI), run(2, limit=9831 * MI, escalated=9831 * MI)),
        POLICY,
        "heavy",
        ("4Gi", "9831Mi"),  # not 1.2 x 9831Mi: once per try
        "raised once in try 2 already",
        id="relaunch-of-a-raised-try-is-not-raised-again",
    ),
    pytest.param(
        retry(3, labels={"tier": "heavy"}),
        profiles(run(1, limit=8 * GI), run(2, limit=9831 * MI, escalated=9831 * MI)),
        POLICY,
        "heavy",
        ("4Gi", "11798Mi"),
        "previous try OOMKilled at limit 9831Mi",
        id="third-try-raised-again-from-the-second",
    ),
    pytest.param(
        retry(2),
        profiles(run(1, oom=False)),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="previous-try-not-killed",
    ),
    pytest.param(
        retry(3),
        profiles(run(1), run(2, oom=False)),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="only-the-previous-pod-counts",
    ),
    pytest.param(
        retry(2),
        profiles(run(1, run_id="scheduled__2026-11-25T05:00:00+00:00")),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="another-run-of-the-task",
    ),
    pytest.param(
        retry(2, map_index=3),
        profiles(run(1, map_index=4)),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="another-map-index",
    ),
    pytest.param(
        retry(2, map_index=3),
        profiles(run(1, map_index=3)),
        POLICY,
        "heavy",
        ("4Gi", "8Gi"),
        "previous try OOMKilled",
        id="same-map-index",
    ),
    pytest.param(
        retry(2),
        profiles(run(1, kind="kpo")),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="the-kpo-pod-of-the-task-is-another-pod",
    ),
    pytest.param(
        retry(2, resources=EXPLICIT),
        profiles(run(1, limit=4 * GI)),
        POLICY,
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="explicit-resources-not-raised-by-default",
    ),
    pytest.param(
        retry(2, resources=EXPLICIT),
        profiles(run(1, limit=4 * GI)),
        policy_with({"oomEscalation": {"explicitResources": True}}),
        "medium",
        ("2Gi", "4916Mi"),
        "previous try OOMKilled at limit 4Gi",
        id="explicit-resources-raised-when-the-policy-says-so",
    ),
    pytest.param(
        retry(2),
        profiles(run(1, limit=4 * GI)),
        policy_with({"oomEscalation": {"enabled": False}}),
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="escalation-off",
    ),
    pytest.param(
        retry(2),
        profiles(run(1, limit=4 * GI)),
        policy_with(
            rules=[
                {
                    "name": "sales",
                    "match": {"dagId": "sales_*"},
                    "learning": {"oomEscalation": {"enabled": False}},
                }
            ]
        ),
        "medium",
        ("2Gi", "4Gi"),
        None,
        id="escalation-off-for-a-rule",
    ),
    pytest.param(
        retry(2),
        profiles(run(1, limit=4 * GI)),
        policy_with(rules=[{"name": "hands off", "match": {}, "override": "never"}]),
        "medium",
        (None, None),
        None,
        id="override-never-leaves-resources-alone",
    ),
]


@pytest.mark.parametrize(("pod", "view", "policy", "tier", "memory", "why"), ESCALATIONS)
def test_oom_escalation(pod, view, policy, tier, memory, why) -> None:
    decision = decide(view_pod(pod), policy, UNKNOWN, view)
    after = mutated(pod, policy, view)
    assert decision.tier.name == tier
    assert base_memory(after) == memory
    notes = after["metadata"]["annotations"]
    if why is None:
        assert decision.escalation is None
        assert "podtier.io/escalated-memory" not in notes
        assert "OOMKilled" not in notes["podtier.io/reason"]
    else:
        assert decision.escalation is not None
        assert why in notes["podtier.io/reason"]
        # validation accepts what the mutation gave, also above the tier's own limit
        checked = admission.validate(review_of(after)["request"], policy, None, SEAL)
        assert checked.review["response"]["allowed"], checked.violations


def test_an_escalated_pod_mutated_again_is_left_as_it_is() -> None:
    """The API server may call podtier again on its own output; nothing changes, also for a
    raise above the tier's limit."""
    view = profiles(run(1, limit=8 * GI))
    pod = retry(2, labels={"tier": "heavy"})
    once = mutated(pod, POLICY, view)
    answer = admission.mutate(review_of(once)["request"], POLICY, UNKNOWN, None, view, SEAL)
    assert "patch" not in answer.review["response"]
    always = policy_with(rules=[{"name": "all", "match": {}, "override": "always"}])
    once = mutated(pod, always, view)
    assert base_memory(once) == ("4Gi", "9831Mi")
    answer = admission.mutate(review_of(once)["request"], always, UNKNOWN, None, view, SEAL)
    assert "patch" not in answer.review["response"]


def test_the_ceiling_still_holds_for_an_escalated_pod() -> None:
    pod = mutated(retry(2, labels={"tier": "heavy"}), POLICY, profiles(run(1, limit=8 * GI)))
    pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = "80Gi"
    checked = admission.validate(review_of(pod)["request"], POLICY, None, SEAL)
    assert not checked.review["response"]["allowed"]
    assert "above the policy ceiling 64Gi" in checked.review["response"]["status"]["message"]


def test_learned_annotations_a_pod_brings_along_are_removed() -> None:
    """A spec copied from an escalated pod (or a forged annotation) does not carry podtier's
    learned annotations into a fresh decision."""
    pod = retry(2)
    pod["metadata"]["annotations"]["podtier.io/escalated-memory"] = "60Gi"
    pod["metadata"]["annotations"]["podtier.io/recommended-tier"] = "gpu"
    after = mutated(pod, POLICY, profiles())
    assert "podtier.io/escalated-memory" not in after["metadata"]["annotations"]
    assert "podtier.io/recommended-tier" not in after["metadata"]["annotations"]


def test_a_raised_tier_is_not_stepped_down_for_lack_of_room() -> None:
    no_compute = FakeCapacity({"worker": None, "compute-optimized": None})
    decision = decide(view_pod(retry(2)), POLICY, no_compute, profiles(run(1, limit=4 * GI)))
    assert decision.tier.name == "heavy"
    assert any("will wait for capacity" in w for w in decision.warnings)


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(ProfilesStatus(False, "profiles are stale: no word for 90s"), id="stale"),
        pytest.param(ProfilesStatus(False, "profiles not listed yet"), id="not-synced"),
    ],
)
def test_unknown_profiles_fall_back_to_the_rules_and_say_so(status: ProfilesStatus) -> None:
    view = StaticProfiles(profiles(run(1, limit=4 * GI)).profiles, status)
    decision = decide(view_pod(retry(2)), POLICY, UNKNOWN, view)
    assert decision.tier.name == "medium"
    assert decision.escalation is None
    assert decision.reason.endswith(f"learned profiles not used: {status.reason}")


# --------------------------------------------------------------------------- right-sizing

SMALL = {"cpu_p95_milli": 180, "memory_peak_bytes": 300 * MI}  # light: cpu <= 250m, mem <= 1Gi
BIG = {"cpu_p95_milli": 1500, "memory_peak_bytes": 3 * GI}  # cpu 1.5 > medium's request 1: heavy
APPLY = policy_with({"rightSizing": "apply"})
OFF = policy_with({"rightSizing": "off"})
SALES_APPLY = {
    "name": "sales",
    "match": {"dagId": "sales_etl"},
    "learning": {"rightSizing": "apply"},
}
GPU_REQUESTS = {"cpu": 2000, "memory": 8 * GI * 1000, "nvidia.com/gpu": 1000}

# `sizing: tier`: the smallest tier that covers the task, with the tier's own sizes.
TIER_RECOMMEND = policy_with({"sizing": "tier"})
TIER_APPLY = policy_with({"rightSizing": "apply", "sizing": "tier"})
TIER_OFF = policy_with({"rightSizing": "off", "sizing": "tier"})

# (pod, profile stats, policy, tier, recommended tier or None)
SIZING = [
    pytest.param(retry(1), {"runs": 6, **SMALL}, TIER_RECOMMEND, "medium", "light", id="recommend"),
    pytest.param(retry(1), {"runs": 6, **SMALL}, TIER_APPLY, "light", "light", id="apply"),
    pytest.param(retry(1), {"runs": 6, **BIG}, TIER_APPLY, "heavy", "heavy", id="apply-upwards"),
    pytest.param(
        retry(1), {"runs": 4, **SMALL}, TIER_APPLY, "medium", None, id="fewer-than-minRuns"
    ),
    pytest.param(
        retry(1),
        {"runs": 3, **SMALL},
        policy_with({"rightSizing": "apply", "minRuns": 3, "sizing": "tier"}),
        "light",
        "light",
        id="minRuns-from-the-policy",
    ),
    pytest.param(retry(1), {"runs": 50}, TIER_APPLY, "medium", None, id="no-usage-sampled"),
    pytest.param(retry(1), {"runs": 6, **SMALL}, TIER_OFF, "medium", None, id="off"),
    pytest.param(
        retry(1),
        {"runs": 6, "cpu_p95_milli": 100, "memory_peak_bytes": 900 * MI},  # x 1.15 > light's 1Gi
        TIER_APPLY,
        "medium",
        "medium",
        id="margin-over-the-peak",
    ),
    pytest.param(
        retry(1),
        {"runs": 6, "cpu_p95_milli": 100, "memory_peak_bytes": 900 * MI},
        policy_with({"rightSizing": "apply", "margin": 0.05, "sizing": "tier"}),
        "light",
        "light",
        id="smaller-margin",
    ),
    pytest.param(
        retry(1, labels={"tier": "heavy"}),
        {"runs": 6, **SMALL},
        TIER_APPLY,
        "heavy",
        "light",
        id="apply-never-goes-below-an-asked-tier",
    ),
    pytest.param(
        retry(1, labels={"tier": "light"}),
        {"runs": 6, **BIG},
        TIER_APPLY,
        "light",
        "heavy",
        id="apply-keeps-an-asked-tier",
    ),
    pytest.param(
        retry(1, resources=EXPLICIT),
        {"runs": 6, **SMALL},
        TIER_APPLY,
        "medium",
        "light",
        id="apply-leaves-explicit-resources",
    ),
    pytest.param(
        retry(1),
        {"runs": 6, **SMALL},
        policy_with(
            {"rightSizing": "recommend", "sizing": "tier"},
            [SALES_APPLY],
        ),
        "light",
        "light",
        id="apply-for-one-rule",
    ),
    pytest.param(
        retry(1),
        {"runs": 6, **SMALL},
        policy_with(
            {"rightSizing": "apply", "sizing": "tier"},
            [{"name": "others", "match": {"dagId": "other_*"}, "learning": {"rightSizing": "off"}}],
        ),
        "light",
        "light",
        id="a-rule-for-other-dags-changes-nothing",
    ),
    pytest.param(
        retry(1, labels={"tier": "gpu"}),
        {"runs": 6, **SMALL, "requests": GPU_REQUESTS},
        TIER_APPLY,
        "gpu",
        "gpu",
        id="a-gpu-task-is-recommended-a-gpu-tier",
    ),
    pytest.param(
        retry(1),
        {"runs": 6, "cpu_p95_milli": 300, "memory_peak_bytes": 5 * GI},  # x 1.15 < heavy's 8Gi
        TIER_APPLY,
        "heavy",
        "heavy",
        id="memory-above-medium-limit-is-heavy",
    ),
    pytest.param(
        retry(1),
        {"runs": 6, "cpu_p95_milli": 9000, "memory_peak_bytes": 3 * GI},
        TIER_APPLY,
        "medium",
        None,
        id="above-every-tier",
    ),
    pytest.param(
        retry(1),
        {"runs": 6, "cpu_p95_milli": 300, "memory_peak_bytes": 7500 * MI},  # x 1.15 > 8Gi
        TIER_APPLY,
        "medium",
        None,
        id="memory-above-every-tier",
    ),
]


@pytest.mark.parametrize(("pod", "stats", "policy", "tier", "recommended"), SIZING)
def test_right_sizing_by_tier(pod, stats, policy, tier, recommended) -> None:
    view = profiles(**stats)
    after = mutated(pod, policy, view)
    notes = after["metadata"]["annotations"]
    assert notes["podtier.io/tier"] == tier
    assert notes.get("podtier.io/recommended-tier") == recommended
    applied = tier != "medium" and "tier" not in pod["metadata"]["labels"]
    assert (f"tier {tier} (learned from {stats['runs']} runs" in notes["podtier.io/reason"]) == (
        applied
    )


def test_a_pod_without_a_profile_or_identity_is_decided_by_the_rules() -> None:
    view = profiles(run(1, limit=4 * GI), runs=6, **SMALL)
    other_task = retry(2)
    other_task["metadata"]["annotations"]["dag_id"] = "other_dag"
    no_identity = airflow_pod(labels={"kubernetes_executor": "True"})
    for pod in (other_task, no_identity):
        decision = decide(view_pod(pod), APPLY, UNKNOWN, view)
        assert decision.tier.name == "medium"
        assert decision.escalation is None
        assert "podtier.io/recommended-tier" not in decision.annotations
