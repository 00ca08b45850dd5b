"""A real podtier server for observability tests: `python -m podtier.webhook serve` in a
subprocess, over TLS with certificates made by `certs.generate`, its stdout and stderr kept
in files."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from podtier.certs.generate import make_ca, make_serving_cert, write_pair

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "admission"


@dataclass
class RunningServer:
    url: str
    metrics_url: str
    client: httpx.Client
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """Everything the server printed so far, stdout and stderr."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod; wait for the process to exit."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                tail = self.output()[-2000:]
                raise AssertionError(f"podtier did not stop on SIGTERM:\n{tail}") from None

    def post(self, path: str, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        return self.client.post(f"{self.url}{path}", content=body, headers=headers)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now, common_name="podtier-test-ca")
    serving = make_serving_cert(ca, now, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    write_pair(directory, ca, serving)
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


StartServer = Callable[..., RunningServer]


@pytest.fixture
def start_server(cert_dir: Path, tmp_path: Path) -> Iterator[StartServer]:
    """`start_server(*extra_args, launcher=None)`: start podtier and wait until it is ready.

    `launcher` replaces `-m podtier.webhook` with another script that ends in
    `podtier.webhook.commands.main.main`."""
    running: list[RunningServer] = []

    def start(*extra: str, launcher: Path | None = None) -> RunningServer:
        port, metrics_port = free_port(), free_port()
        entry = [str(launcher)] if launcher else ["-m", "podtier.webhook"]
        args = [
            sys.executable,
            *entry,
            "serve",
            "--cert-dir",
            str(cert_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--cluster",
            "none",
            *extra,
        ]
        stdout, stderr = tmp_path / f"stdout-{port}.log", tmp_path / f"stderr-{port}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(args, stdout=out, stderr=err, cwd=ROOT, env=env)
        trust = ssl.create_default_context(cafile=cert_dir / "ca.crt")
        client = httpx.Client(verify=trust, timeout=10)
        server = RunningServer(
            f"https://127.0.0.1:{port}",
            f"http://127.0.0.1:{metrics_port}",
            client,
            process,
            stdout,
            stderr,
        )
        running.append(server)
        _wait_ready(server)
        return server

    yield start
    for server in running:
        server.client.close()
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def _wait_ready(server: RunningServer, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            code = server.process.returncode
            raise AssertionError(f"podtier exited with {code}:\n{server.output()}")
        try:
            if server.client.get(f"{server.url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"podtier not ready within {timeout} s:\n{server.output()}")


@pytest.fixture(scope="session")
def fixture_bodies() -> dict[str, bytes]:
    """Every admission fixture, as the API server would send it (`_note` stripped)."""
    bodies = {}
    for path in sorted(FIXTURES.glob("*.json")):
        review = orjson.loads(path.read_bytes())
        review.pop("_note", None)
        bodies[path.stem] = orjson.dumps(review)
    return bodies
