import pytest

from podtier.webhook.core.pod import view_pod
from podtier.webhook.core.validation import find_violations
from tests.webhook.core.fakes import POLICY, airflow_pod

HEAVY = POLICY.tiers["heavy"]


@pytest.mark.parametrize(
    ("resources", "extra", "messages"),
    [
        pytest.param({"requests": {"cpu": "2"}, "limits": {"cpu": "4"}}, [], [], id="within"),
        pytest.param(
            {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
            [],
            [
                "container base: cpu limit 1 is below its request 2",
                "container base: memory limit 2Gi is below its request 4Gi",
            ],
            id="limits-below-requests",
        ),
        pytest.param(
            {"requests": {"cpu": "2"}, "limits": {"cpu": "6"}},
            [],
            ["container base: cpu limit 6 is above tier heavy's limit 4"],
            id="base-above-tier",
        ),
        pytest.param(
            {"requests": {"cpu": "2"}},
            [{"name": "sidecar", "resources": {"requests": {"memory": "100Gi"}}}],
            ["container sidecar: memory request 100Gi is above the policy ceiling 64Gi"],
            id="any-container-above-ceiling",
        ),
        pytest.param(
            {"requests": {"cpu": "1"}},
            [{"name": "sidecar", "resources": {"requests": {"cpu": "6"}}}],
            [],
            id="tier-limits-apply-to-base-only",
        ),
    ],
)
def test_violations_name_container_resource_value_and_limit(resources, extra, messages):
    pod = view_pod(airflow_pod(resources, extra_containers=extra))
    assert [v.message for v in find_violations(pod, POLICY, HEAVY)] == messages
