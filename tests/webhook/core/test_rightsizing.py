"""Right-sizing per resource: what a task's profile recommends (cpu from its p95, memory from
its peak, each with its margin, rounded, at least the floor, inside the tiers and the ceilings),
the tier it is sized in, and what the pod gets once the mutation is applied with jsonpatch and
validated; absurd profiles are ignored and the reason says so."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podtier.webhook.core import admission
from podtier.webhook.core.profile import TaskProfile
from podtier.webhook.core.rightsizing import recommend, tier_for
from tests.conftest import review_of
from tests.webhook.core.fakes import UNKNOWN
from tests.webhook.core.test_learned import GI, MI, mutated, policy_with, profiles, retry, run

APPLY = policy_with({"rightSizing": "apply"})
RECOMMEND = policy_with({"rightSizing": "recommend"})


def profile(cpu: Any, peak: Any, runs: int = 6, **more: Any) -> TaskProfile:
    return TaskProfile(
        namespace="airflow",
        name="t",
        dag_id="sales_etl",
        task_id="extract_orders",
        runs=runs,
        cpu_p95_milli=cpu,
        memory_peak_bytes=peak,
        **more,
    )


def resources(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["spec"]["containers"][0]["resources"]


# (profile figures, policy learning section, requests, limits, tier)
CASES = [
    pytest.param(
        (204, 705 * MI),
        {},
        {"cpu": "210m", "memory": "816Mi"},  # 204m up to 10m; 705Mi x 1.15 = 810.75 up to 16Mi
        {"cpu": "500m", "memory": "928Mi"},  # 705Mi x 1.3 = 916.5 up to 16Mi; light's cpu limit
        "light",
        id="the-real-node-task",
    ),
    pytest.param(
        (400, 5 * GI),
        {},
        {"cpu": "400m", "memory": "5888Mi"},
        {"cpu": "4", "memory": "6656Mi"},
        "heavy",  # memory above medium's 4Gi limit: heavy, but not heavy's 2-cpu request
        id="memory-heavy-task-keeps-its-small-cpu",
    ),
    pytest.param(
        (1400, 1 * GI),
        {},
        {"cpu": "1400m", "memory": "1184Mi"},
        {"cpu": "2", "memory": "1344Mi"},
        "medium",  # medium's 2-cpu limit holds 1.4: no need for heavy
        id="cpu-heavy-task-gets-its-cpu-not-heavy's",
    ),
    pytest.param(
        (1, 1 * MI),
        {},
        {"cpu": "10m", "memory": "64Mi"},
        {"cpu": "500m", "memory": "64Mi"},
        "light",
        id="floor",
    ),
    pytest.param(
        (1, 1 * MI),
        {"floor": {"cpu": "50m", "memory": "256Mi"}},
        {"cpu": "50m", "memory": "256Mi"},
        {"cpu": "500m", "memory": "256Mi"},
        "light",
        id="floor-from-the-policy",
    ),
    pytest.param(
        (200, 500 * MI),
        {"cpuMargin": 0.5, "margin": 0.5, "limitMargin": 1},
        {"cpu": "300m", "memory": "752Mi"},
        {"cpu": "500m", "memory": "1008Mi"},
        "light",
        id="margins-from-the-policy",
    ),
    pytest.param(
        (200, 500 * MI),
        {"cpuLimit": "none"},
        {"cpu": "200m", "memory": "576Mi"},
        {"memory": "656Mi"},
        "light",
        id="no-cpu-limit",
    ),
    pytest.param(
        (300, 7 * GI),
        {},
        {"cpu": "300m", "memory": "8256Mi"},  # 7Gi x 1.15 fits heavy's 8Gi... not: 8256 > 8192
        None,
        None,
        id="request-above-every-tier",
    ),
    pytest.param(
        (300, 6800 * MI),
        {},
        {"cpu": "300m", "memory": "7824Mi"},
        {"cpu": "4", "memory": "8Gi"},  # x 1.3 = 8840Mi: no tier holds it, heavy's limit
        "heavy",
        id="limit-margin-cut-at-the-largest-tier",
    ),
]


@pytest.mark.parametrize(("figures", "learning", "requests", "limits", "tier"), CASES)
def test_a_right_sized_pod(figures, learning, requests, limits, tier) -> None:
    cpu, peak = figures
    policy = policy_with({"rightSizing": "apply", **learning})
    pod = mutated(retry(1), policy, profiles(runs=6, cpu_p95_milli=cpu, memory_peak_bytes=peak))
    notes = pod["metadata"]["annotations"]
    if tier is None:
        assert notes["podtier.io/tier"] == "medium"  # the rules' tier, with its own sizes
        assert resources(pod) == {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        }
        assert "profile ignored" in notes["podtier.io/reason"]
        return
    assert resources(pod) == {"requests": requests, "limits": limits}
    assert notes["podtier.io/tier"] == tier
    assert notes["podtier.io/recommended-cpu"] == requests["cpu"]
    assert notes["podtier.io/recommended-memory"] == requests["memory"]
    assert f"tier {tier} (sized from 6 runs" in notes["podtier.io/reason"]
    assert admission.validate(review_of(pod)["request"], policy).review["response"]["allowed"]
    # the API server may call podtier again on its own output: nothing changes
    again = admission.mutate(
        review_of(pod)["request"], policy, UNKNOWN, None, profiles(runs=6, cpu_p95_milli=cpu)
    )
    assert "patch" not in again.review["response"]


def test_recommend_mode_writes_the_recommendation_and_changes_nothing() -> None:
    view = profiles(runs=6, cpu_p95_milli=204, memory_peak_bytes=705 * MI)
    plain = mutated(retry(1), policy_with({"rightSizing": "off"}), view)
    pod = mutated(retry(1), RECOMMEND, view)
    assert resources(pod) == resources(plain)
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/tier"] == "medium"
    assert {k: v for k, v in notes.items() if k.startswith("podtier.io/recommended")} == {
        "podtier.io/recommended-tier": "light",
        "podtier.io/recommended-cpu": "210m",
        "podtier.io/recommended-memory": "816Mi",
        "podtier.io/recommended-memory-limit": "928Mi",
    }
    assert "podtier.io/right-sized" not in notes


def test_an_asked_tier_keeps_its_pool_and_is_sized_inside_it() -> None:
    view = profiles(runs=6, cpu_p95_milli=204, memory_peak_bytes=705 * MI)
    pod = mutated(retry(1, labels={"tier": "heavy"}), APPLY, view)
    notes = pod["metadata"]["annotations"]
    assert (notes["podtier.io/tier"], notes["podtier.io/pool"]) == ("heavy", "compute")
    assert resources(pod)["requests"] == {"cpu": "210m", "memory": "816Mi"}


def test_an_asked_tier_too_small_for_the_task_moves_up_and_its_pool_follows() -> None:
    view = profiles(runs=6, cpu_p95_milli=400, memory_peak_bytes=5 * GI)
    pod = mutated(retry(1, labels={"tier": "light"}), APPLY, view)
    notes = pod["metadata"]["annotations"]
    assert (notes["podtier.io/tier"], notes["podtier.io/pool"]) == ("heavy", "compute")
    assert resources(pod)["limits"]["memory"] == "6656Mi"


def test_explicit_resources_are_kept_unless_the_tier_overrides_them() -> None:
    view = profiles(runs=6, cpu_p95_milli=204, memory_peak_bytes=705 * MI)
    own = {"requests": {"cpu": "3", "memory": "3Gi"}, "limits": {"cpu": "3", "memory": "3Gi"}}
    kept = mutated(retry(1, resources=own), APPLY, view)
    assert resources(kept) == own
    always = policy_with(
        {"rightSizing": "apply"}, [{"name": "all", "match": {}, "override": "always"}]
    )
    sized = mutated(retry(1, resources=own), always, view)
    assert resources(sized)["requests"] == {"cpu": "210m", "memory": "816Mi"}


def test_the_oom_escalation_wins_over_the_recommendation_for_the_retry() -> None:
    view = profiles(run(1, limit=928 * MI), runs=6, cpu_p95_milli=204, memory_peak_bytes=705 * MI)
    pod = mutated(retry(2), APPLY, view)
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/escalated-memory"] == "1184Mi"  # 928Mi + 256Mi
    assert "podtier.io/right-sized" not in notes
    assert "OOMKilled" in notes["podtier.io/reason"]


def test_per_rule_sizing() -> None:
    policy = policy_with(
        {"rightSizing": "apply"},
        [{"name": "sales by tier", "match": {"dagId": "sales_*"}, "learning": {"sizing": "tier"}}],
    )
    view = profiles(runs=6, cpu_p95_milli=204, memory_peak_bytes=705 * MI)
    pod = mutated(retry(1), policy, view)
    assert pod["metadata"]["annotations"]["podtier.io/tier"] == "light"
    assert resources(pod)["requests"] == {"cpu": "250m", "memory": "512Mi"}  # light's own


ABSURD = [
    pytest.param(-5, 700 * MI, "not usable figures", id="negative-cpu"),
    pytest.param(200, -1, "not usable figures", id="negative-peak"),
    pytest.param(float("nan"), 700 * MI, "not usable figures", id="nan-cpu"),
    pytest.param(200, float("inf"), "not usable figures", id="infinite-peak"),
    pytest.param(10**6, 700 * MI, "above the ceiling 16", id="cpu-p95-a-million-cores"),
    pytest.param(200, 100 * GI, "above the ceiling 64Gi", id="peak-over-the-ceiling"),
    pytest.param(200, 9 * GI, "above every tier's limits", id="peak-over-every-tier"),
]


@pytest.mark.parametrize(("cpu", "peak", "why"), ABSURD)
def test_an_absurd_profile_is_ignored_and_the_pod_gets_its_tier(cpu, peak, why) -> None:
    pod = mutated(retry(1), APPLY, profiles(runs=6, cpu_p95_milli=cpu, memory_peak_bytes=peak))
    reason = pod["metadata"]["annotations"]["podtier.io/reason"]
    assert "profile ignored" in reason and why in reason
    assert resources(pod) == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


@settings(max_examples=300, deadline=None)
@given(
    cpu=st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=True)),
    peak=st.one_of(st.integers(-(2**50), 2**50), st.floats(allow_nan=True)),
    runs=st.integers(0, 50),
)
def test_no_profile_sizes_a_pod_outside_the_floor_the_tier_and_the_ceilings(
    cpu, peak, runs
) -> None:
    rec = recommend(profile(cpu, peak, runs), APPLY, APPLY.learning)
    if rec.target is None:
        return
    floor = APPLY.learning.floor
    assert rec.requests["cpu"] >= floor["cpu"] and rec.requests["memory"] >= floor["memory"]
    assert rec.limits["memory"] >= rec.requests["memory"]
    for tier in APPLY.tiers.values():
        sized_in = tier_for(rec, tier, APPLY)
        if sized_in is None:
            continue
        limits = sized_in.limits
        assert rec.requests["cpu"] <= limits["cpu"].milli
        assert rec.requests["memory"] <= limits["memory"].milli
    for name, ceiling in APPLY.ceilings.items():
        assert rec.requests.get(name, 0) <= ceiling.milli
        assert rec.limits.get(name, 0) <= ceiling.milli


def test_equal_tasks_give_equal_pods() -> None:
    """Figures a few bytes apart round to the same sizes (the memo keys on them)."""
    a = recommend(profile(201, 700 * MI), APPLY, APPLY.learning)
    b = recommend(profile(204, 700 * MI + 4096), APPLY, APPLY.learning)
    assert a.target == b.target
