import pytest

from podtier.webhook.core.decide import decide
from podtier.webhook.core.pod import view_pod
from tests.webhook.core.fakes import EXECUTOR_LABELS, POLICY, UNKNOWN, FakeCapacity, airflow_pod

HEAVY = {**EXECUTOR_LABELS, "tier": "heavy"}
NOTHING_FITS = FakeCapacity({})
ONLY_WORKER = FakeCapacity({"worker": "w-1"})


@pytest.mark.parametrize(
    ("pod", "capacity", "tier", "pool", "node", "warning"),
    [
        pytest.param(
            airflow_pod(labels=HEAVY),
            FakeCapacity({"compute-optimized": "c-1"}),
            "heavy",
            "compute",
            "c-1",
            None,
            id="heavy-fits-compute",
        ),
        pytest.param(
            airflow_pod(labels=HEAVY),
            ONLY_WORKER,
            "heavy",
            "worker",
            "w-1",
            None,
            id="heavy-spills-to-worker-without-warning",
        ),
        pytest.param(
            airflow_pod(labels=HEAVY),
            FakeCapacity({"worker": None}),
            "heavy",
            "compute",
            None,
            "will wait for capacity in pool compute",
            id="nothing-fits-waits",
        ),
        pytest.param(
            airflow_pod(labels=HEAVY),
            UNKNOWN,
            "heavy",
            "compute",
            None,
            None,
            id="unknown-headroom-first-pool",
        ),
    ],
)
def test_placement_outcomes(pod, capacity, tier, pool, node, warning):
    decision = decide(view_pod(pod), POLICY, capacity)
    assert (decision.tier.name, decision.pool.name, decision.node) == (tier, pool, node)
    if warning is None:
        assert decision.warnings == ()
    else:
        assert any(warning in w for w in decision.warnings)


class WorkerFitsOnlyMedium(FakeCapacity):
    """Worker nodes have room for 1 cpu but not 2: medium fits, heavy does not."""

    def find_node(self, node_selector, tolerations, requests):
        super().find_node(node_selector, tolerations, requests)
        if node_selector.get("node-type") == "worker" and requests.get("cpu", 0) <= 1000:
            return "w-3"
        return None


def test_tier_filled_heavy_steps_down_to_medium_with_a_warning():
    capacity = WorkerFitsOnlyMedium({})
    decision = decide(view_pod(airflow_pod(labels=HEAVY)), POLICY, capacity)
    assert (decision.tier.name, decision.pool.name, decision.node) == ("medium", "worker", "w-3")
    assert dict(decision.sizing.set_requests) == {"cpu": "1", "memory": "2Gi"}
    assert any("stepped down from tier heavy to medium" in w for w in decision.warnings)
    assert decision.requests["cpu"] == 1000


def test_downgrade_opt_out_keeps_heavy():
    pod = airflow_pod(labels=HEAVY, annotations={"podtier.io/downgrade": "false"})
    decision = decide(view_pod(pod), POLICY, WorkerFitsOnlyMedium({}))
    assert (decision.tier.name, decision.pool.name, decision.node) == ("heavy", "compute", None)
    assert any("will wait for capacity" in w for w in decision.warnings)


def test_explicit_resources_are_never_stepped_down():
    pod = airflow_pod({"requests": {"cpu": "2", "memory": "4Gi"}}, labels=HEAVY)
    decision = decide(view_pod(pod), POLICY, WorkerFitsOnlyMedium({}))
    assert decision.tier.name == "heavy"
    assert decision.sizing.requests["cpu"] == 2000


def test_requests_asked_are_the_pods_after_sizing():
    capacity = FakeCapacity({"worker": "w-1"})
    pod = airflow_pod(
        extra_containers=[{"name": "sidecar", "resources": {"requests": {"cpu": "100m"}}}]
    )
    decide(view_pod(pod), POLICY, capacity)
    assert capacity.asked[0][2]["cpu"] == 1100  # medium's 1 cpu plus the sidecar


def test_annotations_and_reason():
    decision = decide(view_pod(airflow_pod()), POLICY, UNKNOWN)
    assert dict(decision.annotations) == {
        "podtier.io/tier": "medium",
        "podtier.io/pool": "worker",
        "podtier.io/reason": decision.reason,
        "podtier.io/policy": POLICY.ident,
    }
    assert decision.reason == (
        "tier medium (policy default); pool worker (pinned): first in placement order; "
        "headroom unknown: disabled by --cluster none"
    )


def test_earlier_decision_is_kept_and_not_reserved_again():
    first = decide(
        view_pod(airflow_pod(labels=HEAVY)), POLICY, FakeCapacity({"compute-optimized": "c"})
    )
    pod = airflow_pod(labels=HEAVY, annotations=dict(first.annotations))
    again = decide(view_pod(pod), POLICY, NOTHING_FITS)
    assert (again.tier.name, again.pool.name, again.node) == ("heavy", "compute", None)
    assert again.annotations == first.annotations
    assert again.warnings == ()


RULES = """
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: rules}
spec:
  rules:
    - name: ml-on-gpu-pool
      match: {namespaces: ["ml-*"], dagId: "train_*"}
      tier: heavy
      pools: [gpu]
    - name: reports-never-resized
      match: {labels: {matchLabels: {team: reports}}}
      override: never
"""


def rules_policy():
    from podtier.policies import DEFAULT_POLICY
    from podtier.webhook.policy.load import load_policy_text as load

    return load([(str(DEFAULT_POLICY), DEFAULT_POLICY.read_text()), ("rules.yaml", RULES)])


def test_rule_picks_tier_and_pools():
    pod = airflow_pod(labels={**EXECUTOR_LABELS, "dag_id": "train_bert"})
    pod["metadata"]["namespace"] = "ml-research"
    decision = decide(view_pod(pod), rules_policy(), UNKNOWN)
    assert (decision.tier.name, decision.pool.name) == ("heavy", "gpu")
    assert "rule ml-on-gpu-pool" in decision.reason


def test_rule_override_never_leaves_resources_alone():
    pod = airflow_pod(labels={**EXECUTOR_LABELS, "team": "reports"})
    decision = decide(view_pod(pod), rules_policy(), UNKNOWN)
    assert decision.tier.name == "medium"
    assert dict(decision.sizing.set_requests) == {} and dict(decision.sizing.set_limits) == {}


def test_explicit_tier_label_beats_a_rule():
    pod = airflow_pod(labels={**EXECUTOR_LABELS, "dag_id": "train_bert", "tier": "light"})
    pod["metadata"]["namespace"] = "ml-research"
    decision = decide(view_pod(pod), rules_policy(), UNKNOWN)
    assert (decision.tier.name, decision.pool.name) == ("light", "gpu")
