import pytest

from podtier.webhook.core.pod import view_pod
from podtier.webhook.core.sizing import size_container
from tests.webhook.core.fakes import POLICY, airflow_pod

MEDIUM = POLICY.tiers["medium"]
GI = 2**30 * 1000


def size(resources, mode="missing", tier=MEDIUM, above=False):
    return size_container(view_pod(airflow_pod(resources)).main, tier, mode, above)


@pytest.mark.parametrize(
    ("resources", "mode", "set_requests", "set_limits"),
    [
        pytest.param(
            None,
            "missing",
            {"cpu": "1", "memory": "2Gi"},
            {"cpu": "2", "memory": "4Gi"},
            id="empty-filled-from-tier",
        ),
        pytest.param(
            {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "missing",
            {},
            {"cpu": "2", "memory": "4Gi"},
            id="explicit-requests-kept-limits-filled",
        ),
        pytest.param(
            {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}},
            "missing",
            {"memory": "2Gi"},
            {"memory": "4Gi"},
            id="only-missing-resources-filled",
        ),
        pytest.param(
            {"limits": {"memory": "1Gi"}},
            "missing",
            {"cpu": "1", "memory": "1Gi"},
            {"cpu": "2"},
            id="filled-request-capped-at-own-limit",
        ),
        pytest.param(
            {"requests": {"memory": "6Gi"}},
            "missing",
            {"cpu": "1"},
            {"cpu": "2"},
            id="limit-never-filled-below-own-request",
        ),
        pytest.param(
            {"requests": {"cpu": "500m", "memory": "1Gi"}},
            "always",
            {"cpu": "1", "memory": "2Gi"},
            {"cpu": "2", "memory": "4Gi"},
            id="always-overrides",
        ),
        pytest.param(
            {"requests": {"cpu": "1000m"}},
            "always",
            {"memory": "2Gi"},
            {"cpu": "2", "memory": "4Gi"},
            id="always-skips-equal-values",
        ),
        pytest.param(None, "never", {}, {}, id="never-touches-nothing"),
    ],
)
def test_size_container(resources, mode, set_requests, set_limits):
    sizing = size(resources, mode)
    assert dict(sizing.set_requests) == set_requests
    assert dict(sizing.set_limits) == set_limits
    for name, limit in sizing.limits.items():
        assert limit >= sizing.requests.get(name, 0), "a limit below a request"


def test_pod_above_every_tier_keeps_its_limits_alone():
    sizing = size(
        {"requests": {"cpu": "3", "memory": "6Gi"}}, tier=POLICY.tiers["heavy"], above=True
    )
    assert sizing.set_limits == {}
    assert sizing.limits == {}


def test_tier_filled_only_when_the_pod_brought_no_requests():
    assert size(None).tier_filled
    assert not size({"requests": {"cpu": "1"}}).tier_filled
