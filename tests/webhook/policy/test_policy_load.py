import pytest

from podtier.policies import DEFAULT_POLICY
from podtier.webhook.policy import PolicyError
from podtier.webhook.policy.load import load_policy, load_policy_text

MINIMAL = """
apiVersion: podtier.io/v1alpha1
kind: TierPolicy
metadata: {name: team}
spec:
  airflowPods: [{matchLabels: {kubernetes_executor: "True"}}]
  defaultTier: small
  tiers:
    small: {requests: {cpu: 100m}, limits: {cpu: 200m}, placement: [any]}
  pools:
    any: {nodeSelector: {pool: any}}
"""


def test_default_policy_is_the_design_table():
    policy = load_policy([DEFAULT_POLICY])
    assert list(policy.tiers) == ["light", "medium", "heavy", "gpu"]
    sizes = {
        name: ({k: q.text for k, q in t.requests.items()}, {k: q.text for k, q in t.limits.items()})
        for name, t in policy.tiers.items()
    }
    assert sizes == {
        "light": ({"cpu": "250m", "memory": "512Mi"}, {"cpu": "500m", "memory": "1Gi"}),
        "medium": ({"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "4Gi"}),
        "heavy": ({"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "8Gi"}),
        "gpu": (
            {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"},
            {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        ),
    }
    assert {n: t.placement for n, t in policy.tiers.items()} == {
        "light": ("worker",),
        "medium": ("worker",),
        "heavy": ("compute", "worker"),
        "gpu": ("gpu",),
    }
    assert {n: dict(p.node_selector) for n, p in policy.pools.items()} == {
        "worker": {"node-type": "worker"},
        "compute": {"node-type": "compute-optimized"},
        "gpu": {"node-type": "gpu"},
    }
    assert policy.pools["gpu"].tolerations == (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )
    assert policy.default_tier == "medium"
    assert policy.tier_keys == ("podtier.io/tier", "tier")
    assert policy.ident.startswith("default@sha256:")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            ("cpu: 100m}, limits", 'cpu: "2 cores"}, limits'),
            'x.yaml: spec.tiers.small.requests.cpu: "2 cores" is not a quantity',
            id="bad-quantity",
        ),
        pytest.param(
            ("placement: [any]", "placement: [gpu]"),
            'x.yaml: spec.tiers.small.placement[0]: unknown pool "gpu" (known: any)',
            id="unknown-pool",
        ),
        pytest.param(
            ("defaultTier: small", "defaultTier: huge"),
            'x.yaml: spec.defaultTier: unknown tier "huge" (known: small)',
            id="unknown-default-tier",
        ),
        pytest.param(
            ("limits: {cpu: 200m}", "limits: {cpu: 50m}"),
            "x.yaml: spec.tiers.small.limits.cpu: 50m is below the tier's request 100m",
            id="limit-below-request",
        ),
        pytest.param(
            ("placement: [any]", "placement: [any], limit: {}"),
            "x.yaml: spec.tiers.small.limit: unknown field (expected one of requests, limits,",
            id="typo-field",
        ),
        pytest.param(
            ("kind: TierPolicy", "kind: Policy"),
            'x.yaml: kind: "Policy" is not one of TierPolicy',
            id="wrong-kind",
        ),
        pytest.param(
            ("{pool: any}", "{pool: any, pool: other}"),
            "x.yaml: not valid YAML: line",
            id="duplicate-key",
        ),
        pytest.param(
            ('kubernetes_executor: "True"', "kubernetes_executor: true"),
            "x.yaml: spec.airflowPods[0].matchLabels.kubernetes_executor: True is not a string",
            id="unquoted-label-value",
        ),
    ],
)
def test_errors_name_file_field_and_value(edit, message):
    old, new = edit
    assert old in MINIMAL
    with pytest.raises(PolicyError) as err:
        load_policy_text([("x.yaml", MINIMAL.replace(old, new))])
    assert message in str(err.value)


def test_tier_defined_in_two_files_names_both():
    second = MINIMAL.replace("name: team", "name: other")
    with pytest.raises(PolicyError) as err:
        load_policy_text([("a.yaml", MINIMAL), ("b.yaml", second)])
    assert "b.yaml: spec" in str(err.value)
    assert "also" in str(err.value) and "a.yaml" in str(err.value)


def test_content_hash_changes_with_content():
    one = load_policy_text([("x.yaml", MINIMAL)])
    two = load_policy_text([("x.yaml", MINIMAL.replace("200m", "300m"))])
    assert one.digest != two.digest
    assert one.ident.startswith("team@sha256:")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolicyError) as err:
        load_policy([tmp_path / "nope.yaml"])
    assert str(err.value) == f"{tmp_path / 'nope.yaml'}: no such file"
