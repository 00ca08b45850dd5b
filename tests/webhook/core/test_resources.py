import pytest

from podtier.webhook.core.resources import ResourceError, effective_requests, fits

GI = 2**30 * 1000


def container(name, cpu=None, memory=None, **extra):
    requests = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    requests.update(extra)
    return {"name": name, "resources": {"requests": requests}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"containers": [container("base", "1", "2Gi")]},
            {"cpu": 1000, "memory": 2 * GI, "pods": 1000},
            id="one-container",
        ),
        pytest.param(
            {"containers": [container("base", "1", "1Gi"), container("sidecar", "250m", "1Gi")]},
            {"cpu": 1250, "memory": 2 * GI, "pods": 1000},
            id="app-containers-sum",
        ),
        pytest.param(
            {
                "containers": [container("base", "1", "1Gi")],
                "initContainers": [container("migrate", "3", "512Mi")],
            },
            {"cpu": 3000, "memory": 1 * GI, "pods": 1000},
            id="largest-init-container-wins-per-resource",
        ),
        pytest.param(
            {
                "containers": [container("base", "1", "1Gi")],
                "initContainers": [
                    {**container("proxy", "500m", "1Gi"), "restartPolicy": "Always"},
                    container("migrate", "1", "1Gi"),
                ],
            },
            {"cpu": 1500, "memory": 2 * GI, "pods": 1000},
            id="sidecar-adds-and-runs-beside-later-init",
        ),
        pytest.param(
            {
                "containers": [container("base", "100m")],
                "initContainers": [
                    {**container("proxy", "500m"), "restartPolicy": "Always"},
                    container("migrate", "2"),
                ],
            },
            {"cpu": 2500, "pods": 1000},
            id="init-after-sidecar-counts-the-sidecar",
        ),
        pytest.param(
            {"containers": [container("base", "1")], "overhead": {"cpu": "250m"}},
            {"cpu": 1250, "pods": 1000},
            id="overhead",
        ),
        pytest.param(
            {"containers": [container("base", "2", **{"nvidia.com/gpu": "1"})]},
            {"cpu": 2000, "nvidia.com/gpu": 1000, "pods": 1000},
            id="gpu-counts-like-cpu",
        ),
        pytest.param({"containers": [{"name": "base"}]}, {"pods": 1000}, id="no-requests"),
        pytest.param(
            {"containers": [container("base", "1m", "128m")]},
            {"cpu": 1, "memory": 1000, "pods": 1000},
            id="memory-in-milli-units-counts-as-a-whole-byte",
        ),
        pytest.param(
            {"containers": [container("base", memory="300m"), container("log", memory="300m")]},
            {"memory": 1000, "pods": 1000},
            id="fractions-of-a-byte-are-summed-before-rounding-up",
        ),
        pytest.param(
            {"containers": [container("base", memory="1Gi")], "overhead": {"memory": "500m"}},
            {"memory": GI + 1000, "pods": 1000},
            id="overhead-joins-the-sum-before-rounding-up",
        ),
        pytest.param(
            {"containers": [container("base", "1500u")]},
            {"cpu": 2, "pods": 1000},
            id="cpu-rounds-up-to-a-millicore",
        ),
    ],
)
def test_effective_requests_match_the_scheduler(spec, expected):
    assert effective_requests(spec) == expected


def test_bad_quantity_names_the_field():
    spec = {"containers": [container("base", "lots")]}
    with pytest.raises(ResourceError) as err:
        effective_requests(spec)
    assert err.value.path == "spec.containers[0].resources.requests.cpu"
    assert '"lots" is not a quantity' in str(err.value)


@pytest.mark.parametrize(
    ("requests", "free", "expected"),
    [
        pytest.param({"cpu": 1000}, {"cpu": 1000}, True, id="exact"),
        pytest.param({"cpu": 1001}, {"cpu": 1000}, False, id="one-milli-short"),
        pytest.param({"nvidia.com/gpu": 1000}, {"cpu": 9000}, False, id="missing-extended"),
        pytest.param({"nvidia.com/gpu": 0}, {}, True, id="zero-request-always-fits"),
    ],
)
def test_fits(requests, free, expected):
    assert fits(requests, free) is expected
