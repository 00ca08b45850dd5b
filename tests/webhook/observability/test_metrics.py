"""The metrics users scrape: names on `/metrics`, counters that move under load, and the
headroom gauges computed at scrape time from the registered provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from podtier.webhook.observability import metrics
from podtier.webhook.observability.metrics import HeadroomCollector, PoolHeadroom

GiB = 2**30
LARGEST = "podtier_headroom_largest_free"
FREE = "podtier_headroom_free"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# (name, type) as the `# TYPE` lines of the exposition format declare them.
DECLARED = [
    ("podtier_admission_requests_total", "counter"),
    ("podtier_admission_duration_seconds", "histogram"),
    ("podtier_headroom_largest_free", "gauge"),
    ("podtier_headroom_free", "gauge"),
    ("podtier_headroom_last_sync_timestamp_seconds", "gauge"),
    ("podtier_reservations", "gauge"),
    ("podtier_policy_reloads_total", "counter"),
    ("podtier_cert_expiry_timestamp_seconds", "gauge"),
    ("podtier_oom_escalations_total", "counter"),  # {tier}: no dag_id or task_id labels
    ("podtier_profiles", "gauge"),  # {state}
    ("podtier_rightsizing_cpu_cores_total", "counter"),  # {direction, mode}
    ("podtier_rightsizing_memory_bytes_total", "counter"),
]


def declared(text: str) -> set[tuple[str, str]]:
    return {
        (parts[2], parts[3])
        for line in text.splitlines()
        if line.startswith("# TYPE ") and len(parts := line.split()) == 4
    }


def parse(text: str) -> tuple[set[str], Samples]:
    """(every metric name declared with # TYPE or seen in a sample, the samples)."""
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --- headroom gauges from a provider ------------------------------------------------------------

WORKER = PoolHeadroom(
    "worker",
    largest_free={"cpu": 3500, "memory": 6 * GiB * 1000},
    total_free={"cpu": 41_250, "memory": 90 * GiB * 1000, "pods": 500_000},
)
GPU = PoolHeadroom(
    "gpu",
    largest_free={"cpu": 2000, "memory": 16 * GiB * 1000, "nvidia.com/gpu": 1000},
    total_free={"cpu": 6000, "memory": 40 * GiB * 1000, "nvidia.com/gpu": 3000},
)


@pytest.fixture
def registry() -> Iterator[tuple[CollectorRegistry, HeadroomCollector]]:
    registry = CollectorRegistry()
    collector = HeadroomCollector()
    registry.register(collector)
    yield registry, collector


@pytest.mark.parametrize(
    ("name", "pool", "resource", "expected"),
    [
        pytest.param(LARGEST, "worker", "cpu", 3.5, id="largest-cpu-in-cores"),
        pytest.param(LARGEST, "worker", "memory", 6 * GiB, id="largest-memory-bytes"),
        pytest.param(LARGEST, "worker", "nvidia.com/gpu", 0, id="no-gpu-is-zero"),
        pytest.param(LARGEST, "gpu", "nvidia.com/gpu", 1, id="largest-gpus"),
        pytest.param(FREE, "worker", "cpu", 41.25, id="pool-sum-cpu"),
        pytest.param(FREE, "gpu", "memory", 40 * GiB, id="pool-sum-memory"),
        pytest.param(FREE, "gpu", "nvidia.com/gpu", 3, id="pool-sum-gpus"),
    ],
)
def test_headroom_gauges_show_the_providers_figures_in_base_units(
    registry: tuple[CollectorRegistry, HeadroomCollector],
    name: str,
    pool: str,
    resource: str,
    expected: float,
) -> None:
    reg, collector = registry
    collector.provider = lambda: [WORKER, GPU]
    _, samples = parse(generate_latest(reg).decode())
    assert value(samples, name, pool=pool, resource=resource) == pytest.approx(expected)


def test_headroom_gauges_follow_the_provider_at_each_scrape(
    registry: tuple[CollectorRegistry, HeadroomCollector],
) -> None:
    reg, collector = registry
    figures = [WORKER]
    collector.provider = lambda: figures
    _, before = parse(generate_latest(reg).decode())
    figures = [PoolHeadroom("worker", {"cpu": 250}, {"cpu": 250})]
    _, after = parse(generate_latest(reg).decode())
    labels = {"pool": "worker", "resource": "cpu"}
    assert value(before, "podtier_headroom_largest_free", **labels) == 3.5
    assert value(after, "podtier_headroom_largest_free", **labels) == 0.25


def test_only_the_tracked_resources_are_shown(
    registry: tuple[CollectorRegistry, HeadroomCollector],
) -> None:
    reg, collector = registry
    collector.provider = lambda: [WORKER]
    _, samples = parse(generate_latest(reg).decode())
    resources = {dict(labels)["resource"] for name, labels in samples if "headroom" in name}
    assert resources == {"cpu", "memory", "nvidia.com/gpu"}


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param(None, id="no-provider"),
        pytest.param(lambda: 1 / 0, id="provider-fails"),
    ],
)
def test_without_figures_the_families_are_declared_with_no_samples(
    registry: tuple[CollectorRegistry, HeadroomCollector], provider: object
) -> None:
    reg, collector = registry
    collector.provider = provider  # type: ignore[assignment]
    names, samples = parse(generate_latest(reg).decode())
    assert {"podtier_headroom_largest_free", "podtier_headroom_free"} <= names
    assert not samples


def test_register_headroom_provider_feeds_the_global_registry() -> None:
    try:
        metrics.register_headroom_provider(lambda: [GPU])
        _, samples = parse(generate_latest().decode())
        assert value(samples, "podtier_headroom_free", pool="gpu", resource="cpu") == 6
    finally:
        metrics.register_headroom_provider(None)
    _, samples = parse(generate_latest().decode())
    assert value(samples, "podtier_headroom_free", pool="gpu", resource="cpu") == 0


def test_reservations_are_the_trackers_count_at_each_scrape() -> None:
    from podtier.webhook.headroom import ClusterHeadroom

    tracker = ClusterHeadroom(source="test", static=True)
    try:
        metrics.register_reservations_provider(tracker.reservation_count)
        tracker.state.reserve("n1", {"cpu": 500}, "airflow/a", expires=30)
        tracker.state.reserve("n1", {"cpu": 500}, "airflow/b", expires=30)
        _, samples = parse(generate_latest().decode())
        assert value(samples, "podtier_reservations") == 2
        tracker.state.delete_pod("airflow/a")  # the watch saw it
        _, samples = parse(generate_latest().decode())
        assert value(samples, "podtier_reservations") == 1
    finally:
        metrics.register_reservations_provider(None)
    _, samples = parse(generate_latest().decode())
    assert value(samples, "podtier_reservations") == 0


def test_admission_counts_expose_as_prometheus_clients_own_counter_and_histogram() -> None:
    from prometheus_client import Counter, Histogram

    ours, theirs = CollectorRegistry(), CollectorRegistry()
    collector = metrics.AdmissionCollector()
    ours.register(collector)
    counter = Counter(
        "podtier_admission_requests",
        "Admission reviews answered, by webhook, outcome, tier and pool.",
        ["webhook", "outcome", "tier", "pool"],
        registry=theirs,
    )
    histogram = Histogram(
        "podtier_admission_duration_seconds",
        "Time to answer one admission review, from request received to response built.",
        ["webhook"],
        buckets=metrics.ADMISSION_BUCKETS,
        registry=theirs,
    )
    # on a bound, between bounds, below the first, above the last
    seconds = [0.0001, 0.0003, 0.00005, 0.001, 0.7, 2.5, 0.00025, 1.0]
    for n, value in enumerate(seconds):
        labels = ("mutate" if n % 3 else "validate", "patched", "medium", "worker")
        collector.observe(*labels, value)
        counter.labels(*labels).inc()
        histogram.labels(labels[0]).observe(value)
    assert parse(generate_latest(ours).decode()) == parse(generate_latest(theirs).decode())


# --- a real server under load --------------------------------------------------------------------


def test_metric_names_exist_on_both_listeners(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    for url in (f"{server.url}/metrics", f"{server.metrics_url}/metrics"):
        response = server.client.get(url)
        assert response.status_code == 200
        missing = [metric for metric in DECLARED if metric not in declared(response.text)]
        assert not missing, f"{url} lacks {missing}"


def test_admission_metrics_move_under_load(start_server, fixture_bodies) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    body = fixture_bodies["b_create_executor_pod_docs_template"]
    delete = fixture_bodies["x2_delete_executor_pod_succeeded"]
    _, before = parse(server.client.get(f"{server.metrics_url}/metrics").text)

    rounds = 40
    for _ in range(rounds):
        assert server.post("/mutate", body).json()["response"]["patchType"] == "JSONPatch"
        assert server.post("/validate", body).json()["response"]["allowed"] is True
        assert server.post("/mutate", delete).json()["response"]["allowed"] is True
    assert server.post("/mutate", b"{not json").status_code == 400

    _, after = parse(server.client.get(f"{server.metrics_url}/metrics").text)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "podtier_admission_requests_total"
    patched = {"webhook": "mutate", "outcome": "patched", "tier": "medium", "pool": "worker"}
    assert moved(requests, **patched) == rounds
    allowed = {"webhook": "validate", "outcome": "allowed", "tier": "", "pool": ""}
    assert moved(requests, **allowed) == rounds
    skipped = {"webhook": "mutate", "outcome": "skipped", "tier": "", "pool": ""}
    assert moved(requests, **skipped) == rounds
    bad = {"webhook": "mutate", "outcome": "bad_request", "tier": "", "pool": ""}
    assert moved(requests, **bad) == 1

    count = "podtier_admission_duration_seconds_count"
    assert moved(count, webhook="mutate") == 2 * rounds + 1
    assert moved(count, webhook="validate") == rounds
    slowest = {"webhook": "mutate", "le": "+Inf"}
    assert moved("podtier_admission_duration_seconds_bucket", **slowest) == 2 * rounds + 1
    assert moved("podtier_admission_duration_seconds_sum", webhook="mutate") > 0
