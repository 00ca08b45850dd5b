"""The `prefer` placement mode: node affinity over the tier's allowed pools, preferred in
placement order, with every allowed pool's tolerations; the scheduler picks the node."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import ApiClient, V1Pod

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.core import admission
from podtier.webhook.policy import PolicyError
from podtier.webhook.policy.load import load_policy_text
from tests.conftest import load_review, review_of, run_podtier
from tests.webhook.core.fakes import FakeCapacity, airflow_pod

HEAVY_PLACEMENT = "      placement: [compute, worker]"


def with_heavy_mode(value: str) -> str:
    """The default policy with `placementMode: value` on its heavy tier."""
    text = DEFAULT_POLICY.read_text()
    assert HEAVY_PLACEMENT in text
    return text.replace(HEAVY_PLACEMENT, f"{HEAVY_PLACEMENT}\n      placementMode: {value}")


POLICY = load_policy_text([("prefer.yaml", with_heavy_mode("prefer"))])
HEAVY = {"podtier.io/tier": "heavy", "kubernetes_executor": "True", "dag_id": "d", "task_id": "t"}


def terms(*node_types: str) -> list[dict[str, Any]]:
    return [
        {"matchExpressions": [{"key": "node-type", "operator": "In", "values": [t]}]}
        for t in node_types
    ]


def mutate(pod: dict[str, Any], capacity: FakeCapacity) -> tuple[dict[str, Any], Any]:
    answer = admission.mutate(review_of(pod)["request"], POLICY, capacity)
    encoded = answer.review["response"].get("patch")
    ops = json.loads(base64.b64decode(encoded)) if encoded else []
    return jsonpatch.apply_patch(copy.deepcopy(pod), ops), answer


def test_the_policy_marks_heavy_prefer_and_leaves_the_other_tiers_pinned() -> None:
    assert POLICY.tiers["heavy"].placement_mode == "prefer"
    assert {t.placement_mode for n, t in POLICY.tiers.items() if n != "heavy"} == {"pin"}


def test_a_prefer_pod_gets_affinity_over_every_allowed_pool_and_no_pool_selector() -> None:
    pod, answer = mutate(airflow_pod(labels=HEAVY), FakeCapacity({"compute-optimized": "c1"}))
    spec = pod["spec"]
    node_affinity = spec["affinity"]["nodeAffinity"]
    required = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": terms("compute-optimized", "worker")}
    preferred = node_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [(p["weight"], p["preference"]) for p in preferred] == [
        (100, terms("compute-optimized")[0]),
        (50, terms("worker")[0]),
    ]
    assert "nodeSelector" not in spec
    assert {t["key"] for t in spec["tolerations"]} == {"workload", "dedicated"}
    notes = pod["metadata"]["annotations"]
    assert notes["podtier.io/pool"] == "compute"  # the pool podtier predicts
    assert "preferred, scheduler picks among compute, worker" in notes["podtier.io/reason"]
    assert answer.decision.mode == "prefer"
    # The result is a Pod the kubernetes client reads back whole.
    api = ApiClient()
    model = api._ApiClient__deserialize(pod, V1Pod)  # noqa: SLF001 - the client's own decoder
    assert model.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution


def test_mutating_its_own_output_changes_nothing() -> None:
    capacity = FakeCapacity({"compute-optimized": "c1"})
    once, _ = mutate(airflow_pod(labels=HEAVY), capacity)
    twice, answer = mutate(once, capacity)
    assert answer.review["response"].get("patch") is None
    assert twice == once


def test_a_pod_with_its_own_required_affinity_keeps_it() -> None:
    own = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    raw = airflow_pod(labels=HEAVY)
    raw["spec"]["affinity"] = own
    pod, _ = mutate(raw, FakeCapacity({"compute-optimized": "c1"}))
    node_affinity = pod["spec"]["affinity"]["nodeAffinity"]
    required = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == own["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert len(node_affinity["preferredDuringSchedulingIgnoredDuringExecution"]) == 2


def test_the_predicted_pool_follows_headroom_as_in_pin_mode() -> None:
    pod, answer = mutate(
        airflow_pod(labels=HEAVY), FakeCapacity({"compute-optimized": None, "worker": "w1"})
    )
    assert pod["metadata"]["annotations"]["podtier.io/pool"] == "worker"
    assert answer.decision.node == "w1"  # still reserved, so pinned pods see it
    assert "nodeSelector" not in pod["spec"]
    # It prefers the pool podtier counted it in, so it does not take compute's last room
    # from a pod counted there; compute stays allowed for the scheduler to spill to.
    node_affinity = pod["spec"]["affinity"]["nodeAffinity"]
    preferred = node_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [(p["weight"], p["preference"]) for p in preferred] == [
        (100, terms("worker")[0]),
        (50, terms("compute-optimized")[0]),
    ]
    required = node_affinity["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": terms("compute-optimized", "worker")}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("spread", 'placementMode: "spread" is not one of pin, prefer', id="unknown"),
        pytest.param(3, "placementMode: 3 is not one of pin, prefer", id="not-a-string"),
    ],
)
def test_a_bad_placement_mode_names_the_field(value: object, message: str) -> None:
    text = with_heavy_mode(json.dumps(value))
    with pytest.raises(PolicyError) as caught:
        load_policy_text([("bad.yaml", text)])
    assert str(caught.value) == f"bad.yaml: spec.tiers.heavy.{message}"


def airflow_heavy_from_the_template() -> dict[str, Any]:
    """Fixture b (Airflow's KubernetesExecutor pod from the docs' pod template: nodeSelector
    node-type=worker, the dedicated=worker toleration), asking for tier heavy, its template
    resources left to the tier."""
    pod = load_review("b")["request"]["object"]
    pod["metadata"]["labels"]["podtier.io/tier"] = "heavy"
    pod["spec"]["containers"][0].pop("resources")
    return pod


def test_the_templates_pool_key_leaves_the_node_selector_so_the_scheduler_may_pick() -> None:
    raw = airflow_heavy_from_the_template()
    raw["spec"]["nodeSelector"]["zone"] = "eu-1a"  # not a pool's key: it stays
    pod, answer = mutate(raw, FakeCapacity({"compute-optimized": "c1"}))
    assert pod["spec"]["nodeSelector"] == {"zone": "eu-1a"}
    required = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert required == {"nodeSelectorTerms": terms("compute-optimized", "worker")}
    assert answer.decision.removed_selector == {"node-type": "worker"}
    assert answer.decision.pool.name == "compute"


def test_a_node_selector_of_pool_keys_only_goes_whole_and_a_second_pass_changes_nothing() -> None:
    capacity = FakeCapacity({"compute-optimized": "c1"})
    once, answer = mutate(airflow_heavy_from_the_template(), capacity)
    ops = json.loads(base64.b64decode(answer.review["response"]["patch"]))
    assert {"op": "remove", "path": "/spec/nodeSelector"} in ops
    assert "nodeSelector" not in once["spec"]
    twice, again = mutate(once, capacity)
    assert again.review["response"].get("patch") is None
    assert twice == once


def test_pin_mode_still_replaces_the_pool_key_and_keeps_the_others() -> None:
    raw = airflow_heavy_from_the_template()
    raw["spec"]["nodeSelector"]["zone"] = "eu-1a"
    pinned = load_policy_text([("pin.yaml", DEFAULT_POLICY.read_text())])
    answer = admission.mutate(review_of(raw)["request"], pinned, FakeCapacity({}))
    ops = json.loads(base64.b64decode(answer.review["response"]["patch"]))
    pod = jsonpatch.apply_patch(copy.deepcopy(raw), ops)
    assert pod["spec"]["nodeSelector"] == {"node-type": "compute-optimized", "zone": "eu-1a"}
    assert answer.decision.removed_selector == {}


def test_explain_says_which_node_selector_pair_prefer_removed(tmp_path: Path) -> None:
    pod_file = tmp_path / "pod.json"
    pod_file.write_text(json.dumps(airflow_heavy_from_the_template()))
    policy_file = tmp_path / "prefer.yaml"
    policy_file.write_text(with_heavy_mode("prefer"))
    text = run_podtier("explain", str(pod_file), "--policy", str(policy_file))
    assert text.returncode == 0, text.stderr
    assert "removed: nodeSelector node-type=worker" in text.stdout
    assert "remove  /spec/nodeSelector" in text.stdout
    out = run_podtier(
        "explain", str(pod_file), "--policy", str(policy_file), "--output", "json"
    ).stdout
    assert json.loads(out)["removed_node_selector"] == {"node-type": "worker"}


@settings(max_examples=200, deadline=None)
@given(
    selector=st.dictionaries(
        st.sampled_from(["node-type", "zone", "team", "a/b~c", "disk"]),
        st.sampled_from(["worker", "gpu", "compute-optimized", "x"]),
        max_size=5,
    ),
    compute_has_room=st.booleans(),
)
def test_any_node_selector_loses_only_the_pools_keys_and_a_second_pass_is_empty(
    selector: dict[str, str], compute_has_room: bool
) -> None:
    capacity = FakeCapacity(
        {"compute-optimized": "c1" if compute_has_room else None, "worker": "w1"}
    )
    raw = airflow_pod(labels=HEAVY, node_selector=selector)
    once, answer = mutate(raw, capacity)
    kept = {k: v for k, v in selector.items() if k != "node-type"}  # node-type: every pool's key
    assert once["spec"].get("nodeSelector", {}) == kept
    assert answer.decision.removed_selector == {
        k: v for k, v in selector.items() if k == "node-type"
    }
    twice, again = mutate(once, capacity)
    assert again.review["response"].get("patch") is None
    assert twice == once
