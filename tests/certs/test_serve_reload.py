"""End to end: `podtier serve` (a real subprocess) picks up a kubelet-style Secret update of its
cert dir while a request loop runs: new serial within seconds, same PID, zero failed requests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.generate import CertPair
from tests.certs.conftest import serving_for
from tests.certs.tls_helpers import RequestLoop, client_context, https_get, kubelet_update

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def files(ca: CertPair, serving: CertPair) -> dict[str, bytes]:
    return {"ca.crt": ca.cert_pem, "tls.crt": serving.cert_pem, "tls.key": serving.key_pem}


@pytest.fixture
def volume(tmp_path: Path, ca: CertPair) -> Path:
    path = tmp_path / "secret-volume"
    kubelet_update(path, files(ca, serving_for(ca)))
    return path


@pytest.fixture
def served(volume: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook",
            "serve",
            "--cert-dir",
            str(volume),
            "--cluster",
            "none",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("podtier serve did not start listening within 30 s")
    yield process, port
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_serve_reloads_kubelet_swapped_certs_under_load(
    served: tuple[subprocess.Popen[bytes], int], volume: Path, ca: CertPair
) -> None:
    process, port = served
    client = client_context(ca.cert_pem)
    first_serial = https_get(port, client)[1].serial_number
    new_serials = []
    with RequestLoop(lambda: https_get(port, client)) as requests:
        for _round in range(2):
            time.sleep(0.5)
            new = serving_for(ca)
            kubelet_update(volume, files(ca, new))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (
                not requests.serials or requests.serials[-1] != new.cert.serial_number
            ):
                time.sleep(0.02)
            assert requests.serials[-1] == new.cert.serial_number, "new serial not served in 10 s"
            new_serials.append(new.cert.serial_number)
        time.sleep(0.5)
    assert process.poll() is None  # same process, never restarted
    assert requests.failures == []
    assert len(requests.serials) > 20
    assert requests.serials[0] == first_serial and requests.serials[-1] == new_serials[-1]
    seen = list(dict.fromkeys(requests.serials))
    assert seen == [first_serial, *new_serials]  # each pair served in order, none went back
