"""Fixtures of the real-node suite: the cluster (tests/realnode.py), podtier's image built from
the repository's Dockerfile, the chart installed the way `helm install` does it, and a
Prometheus scraping the kubelets' cAdvisor (`prometheus`, its `.url` reachable from pods). They are
package-scoped: the cluster stops once the last test here ran, not at the end of the whole run.

Every test here is marked `realnode` (`pytest -m realnode` selects them, `-m "not realnode"`
leaves them out) and skips, saying why, where no cluster can be had. Timings and counts land in
`E2E_TIMINGS` and `E2E_COUNTS` and are printed at the end of the session ("real-node figures")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests import realnode
from tests.e2e import install
from tests.e2e.airflow_host import airflow_venv

ROOT = realnode.ROOT
E2E_TIMINGS: dict[str, float] = {}
E2E_COUNTS: dict[str, int] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realnode)
            item.add_marker(pytest.mark.timeout(1500))


@pytest.fixture(scope="package")
def e2e_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="package")
def airflow_python(e2e_work: Path) -> Iterator[Future[Path]]:
    """Airflow's own venv on the host, made in the background while images build."""
    why = realnode.skip_reason()
    if why is not None:
        pytest.skip(why)
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(airflow_venv, e2e_work / "airflow-venv.log")


@pytest.fixture(scope="package")
def cluster(e2e_work: Path, airflow_python: Future[Path]) -> Iterator[realnode.Cluster]:
    why = realnode.skip_reason()
    if why is not None:
        pytest.skip(why)
    started, ran = time.monotonic(), False
    try:
        with realnode.cluster(e2e_work) as found:
            E2E_TIMINGS.update(found.timings)
            ran = True
            yield found
    except realnode.NoKubelet as err:
        pytest.skip(str(err))
    finally:
        if ran:  # includes the image builds, every test here, and down.sh
            E2E_TIMINGS["real-node suite, cluster start to stop"] = time.monotonic() - started


@pytest.fixture(scope="package")
def api(cluster: realnode.Cluster) -> Iterator[kubernetes.client.ApiClient]:
    with cluster.api() as client:
        yield client


@pytest.fixture(scope="package")
def python_image(cluster: realnode.Cluster) -> str:
    """The Python image pods of the tests run (on realnode: the stand-in, loaded into both
    nodes)."""
    cluster.load(realnode.PYTHON_IMAGE)
    return realnode.PYTHON_IMAGE


@pytest.fixture(scope="package")
def podtier_image(cluster: realnode.Cluster) -> str:
    """podtier's image from the repository's Dockerfile, unmodified; tagged by a hash of what
    the Dockerfile copies, so a second session reuses it."""
    inputs = [ROOT / name for name in ("Dockerfile", "pyproject.toml", "README.md")]
    inputs += [ROOT / name for name in ("webhook", "certs", "policies")]
    tag = realnode.content_tag("localhost/podtier", inputs)
    started = time.monotonic()
    E2E_TIMINGS["podtier image build"] = cluster.build(tag, ROOT)
    E2E_TIMINGS["podtier image build + load"] = time.monotonic() - started
    return tag


@pytest.fixture(scope="package")
def prometheus(cluster: realnode.Cluster, e2e_work: Path) -> Iterator[realnode.Prometheus]:
    """Debian's prometheus on the host scraping both kubelets' cAdvisor every second, at
    `prometheus.url` (an address pods reach too: give it to the chart's
    `learning.prometheusURL`); skips without the binary."""
    try:
        server = realnode.cadvisor_prometheus(cluster, e2e_work / "prometheus")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Release:
    """The chart installed in namespace `podtier`, podtier sending Airflow pods of namespace
    `airflow`."""

    values: dict[str, Any]
    objects: list[dict[str, Any]]
    deployment: str
    ready_seconds: float


@pytest.fixture(scope="package")
def release(cluster: realnode.Cluster, podtier_image: str, api: Any) -> Release:
    repository, _, tag = podtier_image.rpartition(":")
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "webhook": {"namespaces": [install.AIRFLOW_NS]},
    }
    started = time.monotonic()
    objects = install.helm_install(cluster, values)
    deployment = install.deployment_name(objects)
    install.wait_rolled_out(cluster, deployment)
    install.wait_ca_bundles(api, objects)
    ready = time.monotonic() - started
    E2E_TIMINGS["chart install to replicas Ready + caBundle"] = ready
    return Release(values, objects, deployment, ready)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not E2E_TIMINGS and not E2E_COUNTS:
        return
    terminalreporter.section("real-node figures")
    for what, seconds in E2E_TIMINGS.items():
        terminalreporter.write_line(f"{what}: {seconds:.1f} s")
    for what, count in E2E_COUNTS.items():
        terminalreporter.write_line(f"{what}: {count}")
