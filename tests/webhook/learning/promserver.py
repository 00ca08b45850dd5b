"""A real Prometheus (Debian's `prometheus` package) on 127.0.0.1, scraping a test exporter that
serves cAdvisor's container metrics for pods whose usage the test scripts.

`PodUsageExporter` is a prometheus_client HTTP server on loopback serving
`container_memory_working_set_bytes` and `container_cpu_usage_seconds_total` with the labels
cAdvisor puts on them (namespace, pod, container), from a script of phases (seconds, memory
bytes, cpu cores); once the script is over, the pod's series go, as a finished container's do.
`prometheus_server` starts Prometheus with a 1 s scrape of that exporter, in a temp dir,
listening on 127.0.0.1 only, and stops it at the end. Without the binary, the caller skips.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tests.conftest import free_port

PROMETHEUS = shutil.which("prometheus")
SKIP_REASON = "no prometheus binary (Debian: apt-get install prometheus; .ci/run does it)"


@dataclass
class ScriptedPod:
    namespace: str
    pod: str
    container: str
    phases: list[tuple[float, float, float]]  # (seconds, memory bytes, cpu cores)
    started: float = field(default_factory=time.time)

    @property
    def finished(self) -> float:
        return self.started + sum(p[0] for p in self.phases)

    def at(self, now: float) -> tuple[float, float] | None:
        """(memory bytes, cpu seconds used so far) at `now`; None once the container ended."""
        elapsed, used = now - self.started, 0.0
        for seconds, memory, cores in self.phases:
            if elapsed < seconds:
                return memory, used + elapsed * cores
            elapsed -= seconds
            used += seconds * cores
        return None


class PodUsageExporter:
    def __init__(self) -> None:
        self.pods: list[ScriptedPod] = []
        self.port = free_port()
        self._server: Any = None

    def describe(self) -> list[Any]:  # a prometheus_client Collector
        return []

    def collect(self) -> Iterator[Any]:
        labels = ["namespace", "pod", "container"]
        memory = GaugeMetricFamily(
            "container_memory_working_set_bytes", "Current working set in bytes.", labels=labels
        )
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds", "Cumulative cpu time consumed.", labels=labels
        )
        now = time.time()
        for pod in self.pods:
            reading = pod.at(now)
            if reading is not None:
                values = [pod.namespace, pod.pod, pod.container]
                memory.add_metric(values, reading[0])
                cpu.add_metric(values, reading[1])
        yield memory
        yield cpu

    def start(self) -> PodUsageExporter:
        registry = CollectorRegistry()
        registry.register(self)
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=registry)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def prometheus_server(exporter: PodUsageExporter, directory: Path) -> Iterator[str]:
    """Prometheus scraping `exporter` every second; yields its URL (127.0.0.1 only)."""
    job = {"job_name": "cadvisor", "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}
    with prometheus_with({"scrape_configs": [job]}, directory) as url:
        yield url


@contextlib.contextmanager
def prometheus_with(
    config: dict[str, Any], directory: Path, rules: dict[str, Any] | None = None
) -> Iterator[str]:
    """Prometheus with `config` (scrape and evaluation every second unless it says otherwise)
    and, if given, `rules` as its one rule file; yields its URL (127.0.0.1 only)."""
    port = free_port()
    full = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, **config}
    if rules is not None:
        (directory / "rules.yaml").write_text(yaml.safe_dump(rules))
        full["rule_files"] = [str(directory / "rules.yaml")]
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(full))
    assert PROMETHEUS is not None
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited {process.returncode}: "
                    + (directory / "prometheus.log").read_text()
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus not ready within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_until_over(pod: ScriptedPod, scrapes: float = 2.5) -> None:
    """Until the pod's script is over and a few more scrapes are in."""
    while time.time() < pod.finished + scrapes:
        time.sleep(0.2)
