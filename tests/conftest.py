"""Shared test helpers: fixtures from tests/fixtures, certificates made by podtier, and a real
`podtier serve` process on loopback reached over TLS."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from podtier.certs.generate import make_ca, make_serving_cert, write_pair

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "admission"


def load_review(name: str) -> dict[str, Any]:
    """An AdmissionReview fixture by its letter or file stem (`b`, `x1`, `h_create...`)."""
    matches = sorted(FIXTURES.glob(f"{name}_*.json")) or sorted(FIXTURES.glob(f"{name}.json"))
    assert matches, f"no fixture {name}"
    review = json.loads(matches[0].read_text())
    review.pop("_note", None)
    return review


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_cert_dir(directory: Path) -> Path:
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now)
    serving = make_serving_cert(ca, now, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    write_pair(directory, ca, serving)
    return directory


def client_context(cert_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))


class Server:
    """A `python -m podtier.webhook serve` subprocess on 127.0.0.1."""

    def __init__(
        self,
        cert_dir: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        """`port`: listen there (a restart at the same address); default a free one."""
        self.cert_dir = cert_dir
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "podtier.webhook", "serve", "--cert-dir", str(cert_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), *args]
        self.log_path = cert_dir / f"server-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )
        self.client = httpx.Client(base_url=self.url, verify=client_context(cert_dir), timeout=10)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}: {self.logs()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not up in {timeout}s: {self.logs()}")

    def post(self, path: str, review: Any) -> httpx.Response:
        body = review if isinstance(review, bytes) else json.dumps(review).encode()
        return self.client.post(path, content=body, headers={"Content-Type": "application/json"})

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cert_dir(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def server(cert_dir: Path) -> Iterator[Server]:
    """One shared podtier server with the default policy and headroom off."""
    srv = Server(cert_dir, ["--cluster", "none"])
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def review_of(pod: dict[str, Any], operation: str = "CREATE", uid: str = "u-1") -> dict[str, Any]:
    """An AdmissionReview around `pod`, shaped like kube-apiserver's."""
    metadata = pod.get("metadata") or {}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": metadata.get("namespace", "airflow"),
            "name": metadata.get("name", "p"),
            "operation": operation,
            "object": copy.deepcopy(pod),
            "dryRun": False,
        },
    }


def run_podtier(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`podtier ARGS...` as a user runs it, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "podtier.webhook", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@contextlib.contextmanager
def listening_podtier(
    cert_dir: Path, *args: str, timeout: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`podtier serve` on 127.0.0.1 until its port accepts connections (for tests that bring
    their own TLS client, or whose certificates appear only once the server runs);
    yields (process, port) and stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "podtier.webhook", "serve", "--cert-dir", str(cert_dir)]
    command += ["--cluster", "none", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", *args]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"podtier serve exited {process.returncode}: {stderr}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"podtier serve did not listen within {timeout:g} s")
                time.sleep(0.1)
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


class FakeClock:
    """An injectable monotonic clock that moves only when the test says so; `sleep` moves it
    and records how long was asked."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
