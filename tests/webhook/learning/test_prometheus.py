"""Usage from a real Prometheus (Debian's package) that scrapes a test exporter serving
cAdvisor's container metrics: the base container's peak working set and cpu p95 over the
pod's run, the sidecar left out; nothing for an unknown pod; an error when Prometheus is down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podtier.webhook.learning.prometheus import PodRun, PrometheusError, PrometheusUsage
from tests.webhook.learning.promserver import (
    PROMETHEUS,
    SKIP_REASON,
    PodUsageExporter,
    ScriptedPod,
    prometheus_server,
    wait_until_over,
)

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason=SKIP_REASON)
MI = 2**20


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ScriptedPod]]:
    """One pod's 12 s run scraped every second: 200Mi at 0.2 cores, a 6 s burst of 700Mi at
    2 cores, 300Mi at 0.2 cores (mean 1.1 cores); its xcom sidecar holds more memory than base
    ever does. The burst is long next to the rate window, so scrapes late on a busy machine
    still leave whole windows inside it."""
    exporter = PodUsageExporter().start()
    base = ScriptedPod(
        "airflow",
        "etl-load-1",
        "base",
        [(3, 200 * MI, 0.2), (6, 700 * MI, 2.0), (3, 300 * MI, 0.2)],
    )
    sidecar = ScriptedPod("airflow", "etl-load-1", "airflow-xcom-sidecar", [(12, 2000 * MI, 0.1)])
    try:
        with prometheus_server(exporter, tmp_path_factory.mktemp("prometheus")) as url:
            base.started = sidecar.started = time.time() + 1  # Prometheus is up and scraping
            exporter.pods += [base, sidecar]
            wait_until_over(base)
            yield url, base
    finally:
        exporter.stop()


def run_of(pod: ScriptedPod, name: str | None = None) -> PodRun:
    return PodRun(pod.namespace, name or pod.pod, "base", pod.started, pod.finished)


def test_the_base_containers_peak_and_cpu_p95(scraped: tuple[str, ScriptedPod]) -> None:
    url, pod = scraped
    usage = PrometheusUsage(url, window=3, step=1, lag=2).usage(run_of(pod))
    assert usage.memory_peak_bytes == 700 * MI
    assert usage.cpu_p95_milli is not None
    assert 1700 <= usage.cpu_p95_milli <= 2300  # the burst, not the mean


def test_an_unknown_pod_has_no_usage(scraped: tuple[str, ScriptedPod]) -> None:
    url, pod = scraped
    usage = PrometheusUsage(url, window=3, step=1, lag=2).usage(run_of(pod, "other-pod"))
    assert (usage.memory_peak_bytes, usage.cpu_p95_milli) == (None, None)


def test_a_label_value_cannot_break_the_query(scraped: tuple[str, ScriptedPod]) -> None:
    url, pod = scraped
    usage = PrometheusUsage(url, window=3, step=1).usage(run_of(pod, 'x"} or vector(1) #'))
    assert (usage.memory_peak_bytes, usage.cpu_p95_milli) == (None, None)


def test_prometheus_down_is_an_error(tmp_path: Path) -> None:
    from tests.conftest import free_port

    source = PrometheusUsage(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PrometheusError, match="did not answer"):
        source.usage(PodRun("airflow", "p", "base", 0.0, 60.0))
