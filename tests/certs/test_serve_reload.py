"""End to end: `podtier serve` (a real subprocess) picks up a kubelet-style Secret update of its
cert dir while a request loop runs: new serial within seconds, same PID, zero failed requests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podtier.certs.generate import CertPair
from tests.certs.conftest import serving_for
from tests.certs.tls_helpers import RequestLoop, client_context, https_get, kubelet_update
from tests.conftest import listening_podtier


def files(ca: CertPair, serving: CertPair) -> dict[str, bytes]:
    return {"ca.crt": ca.cert_pem, "tls.crt": serving.cert_pem, "tls.key": serving.key_pem}


@pytest.fixture
def volume(tmp_path: Path, ca: CertPair) -> Path:
    path = tmp_path / "secret-volume"
    kubelet_update(path, files(ca, serving_for(ca)))
    return path


@pytest.fixture
def served(volume: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    with listening_podtier(volume) as running:
        yield running


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
