import pytest

from podtier.webhook.core.pod import view_pod
from podtier.webhook.core.tiering import choose_tier
from tests.webhook.core.fakes import EXECUTOR_LABELS, POLICY, airflow_pod


@pytest.mark.parametrize(
    ("pod", "tier", "why", "warned"),
    [
        pytest.param(airflow_pod(), "medium", "policy default", False, id="nothing-asked-default"),
        pytest.param(
            airflow_pod(labels={**EXECUTOR_LABELS, "tier": "light"}),
            "light",
            "asked by label tier",
            False,
            id="plain-tier-label",
        ),
        pytest.param(
            airflow_pod(annotations={"podtier.io/tier": "heavy"}),
            "heavy",
            "asked by annotation podtier.io/tier",
            False,
            id="podtier-annotation",
        ),
        pytest.param(
            airflow_pod(labels={**EXECUTOR_LABELS, "tier": "light", "podtier.io/tier": "gpu"}),
            "gpu",
            "asked by label podtier.io/tier",
            False,
            id="podtier-key-before-plain-key",
        ),
        pytest.param(
            airflow_pod({"requests": {"cpu": "500m", "memory": "1Gi"}}),
            "medium",
            "base requests fit it",
            False,
            id="classified-smallest-covering",
        ),
        pytest.param(
            airflow_pod({"requests": {"cpu": "200m", "memory": "256Mi"}}),
            "light",
            "base requests fit it",
            False,
            id="classified-light",
        ),
        pytest.param(
            airflow_pod({"requests": {"cpu": "1", "nvidia.com/gpu": "1"}}),
            "gpu",
            "base requests fit it",
            False,
            id="gpu-request-only-gpu-covers",
        ),
        pytest.param(
            airflow_pod({"requests": {"cpu": "3"}}),
            "heavy",
            "base requests (cpu 3) exceed every tier",
            False,
            id="above-every-tier",
        ),
        pytest.param(
            airflow_pod(
                {"requests": {"cpu": "250m", "memory": "256Mi"}},
                labels={**EXECUTOR_LABELS, "tier": "standard"},
            ),
            "light",
            "base requests fit it",
            True,
            id="unknown-tier-warns-then-classifies",
        ),
    ],
)
def test_choose_tier(pod, tier, why, warned):
    choice = choose_tier(view_pod(pod), POLICY)
    assert choice.tier.name == tier
    assert choice.why == why
    assert bool(choice.warnings) is warned
    if warned:
        assert 'tier="standard" names no tier of policy default' in choice.warnings[0]
