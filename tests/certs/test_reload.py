"""Hot reload: a running TLS server picks up a new pair with no restart and no failed request."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from podtier.certs.generate import CertPair, make_ca, make_serving_cert
from podtier.certs.reload import Reloader, reload_once, watch_cert_dir
from podtier.certs.tls import server_context
from tests.certs.conftest import serving_for
from tests.certs.tls_helpers import (
    LoopThread,
    RequestLoop,
    client_context,
    https_get,
    kubelet_update,
    start_tls_server,
)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def files(ca: CertPair, serving: CertPair) -> dict[str, bytes]:
    return {"ca.crt": ca.cert_pem, "tls.crt": serving.cert_pem, "tls.key": serving.key_pem}


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class WatchedServer:
    """A TLS server on 127.0.0.1 whose context is kept fresh by `watch_cert_dir`."""

    def __init__(self, loop: LoopThread, cert_dir: Path) -> None:
        self.loop = loop
        self.ctx = server_context(cert_dir / "tls.crt", cert_dir / "tls.key")
        self.stop = loop.run(self._make_event())
        self.task = asyncio.run_coroutine_threadsafe(
            watch_cert_dir(self.ctx, cert_dir, self.stop), loop.loop
        )
        _server, self.port = loop.run(start_tls_server(self.ctx))
        time.sleep(0.3)  # let the watcher start

    @staticmethod
    async def _make_event() -> asyncio.Event:
        return asyncio.Event()

    def close(self) -> None:
        self.loop.loop.call_soon_threadsafe(self.stop.set)
        self.task.result(10)


def test_kubelet_secret_swap_under_load_serves_new_serial_with_zero_failures(
    loop: LoopThread, tmp_path: Path, ca: CertPair
) -> None:
    volume = tmp_path / "secret-volume"
    first = serving_for(ca)
    kubelet_update(volume, files(ca, first))
    server = WatchedServer(loop, volume)
    client = client_context(ca.cert_pem)
    with RequestLoop(lambda: https_get(server.port, client)) as requests:
        assert wait_for(lambda: len(requests.serials) >= 20)
        for _round in range(3):
            new = serving_for(ca)
            kubelet_update(volume, files(ca, new))
            assert wait_for(lambda n=new: requests.serials[-1] == n.cert.serial_number), (
                "new serial not served within 10 s"
            )
            count = len(requests.serials)
            assert wait_for(lambda c=count: len(requests.serials) >= c + 20)
    server.close()
    assert requests.failures == []
    assert first.cert.serial_number in requests.serials
    assert requests.serials[-1] == new.cert.serial_number
    # Once the new serial shows up, the old one is never served again.
    last_old = max(i for i, s in enumerate(requests.serials) if s == first.cert.serial_number)
    assert first.cert.serial_number not in requests.serials[last_old + 1 :]


def test_half_written_or_broken_pair_keeps_the_old_one(
    loop: LoopThread, tmp_path: Path, ca: CertPair, caplog: pytest.LogCaptureFixture
) -> None:
    volume = tmp_path / "secret-volume"
    good = serving_for(ca)
    kubelet_update(volume, files(ca, good))
    server = WatchedServer(loop, volume)
    client = client_context(ca.cert_pem)
    other = serving_for(ca)
    with (
        caplog.at_level(logging.WARNING, logger="podtier.certs.reload"),
        RequestLoop(lambda: https_get(server.port, client)) as requests,
    ):
        # A cert whose key is empty, then a cert with someone else's key, then garbage.
        broken = [
            {"tls.crt": other.cert_pem, "tls.key": b""},
            {"tls.crt": other.cert_pem, "tls.key": good.key_pem},
            {"tls.crt": b"-----BEGIN CERTIFICATE-----\nnope", "tls.key": good.key_pem},
        ]
        for number, pair in enumerate(broken, start=1):
            kubelet_update(volume, pair)
            assert wait_for(
                lambda n=number: caplog.text.count("keeping the current certificate") >= n
            )
        count = len(requests.serials)
        assert wait_for(lambda: len(requests.serials) >= count + 20)
        assert set(requests.serials) == {good.cert.serial_number}
        kubelet_update(volume, files(ca, other))
        assert wait_for(lambda: requests.serials[-1] == other.cert.serial_number)
    server.close()
    assert requests.failures == []
    assert "key does not match the certificate" in caplog.text
    assert "not a PEM certificate" in caplog.text


def test_plain_files_replaced_in_place_are_picked_up(
    loop: LoopThread, cert_dir: Path, ca: CertPair
) -> None:
    server = WatchedServer(loop, cert_dir)
    client = client_context(ca.cert_pem)
    new = serving_for(ca)
    (cert_dir / "tls.key").write_bytes(new.key_pem)
    (cert_dir / "tls.crt").write_bytes(new.cert_pem)
    assert wait_for(
        lambda: https_get(server.port, client)[1].serial_number == new.cert.serial_number
    )
    server.close()


def test_reload_once_reports_whether_a_new_pair_went_live(tmp_path: Path, ca: CertPair) -> None:
    first, second = serving_for(ca), serving_for(ca)
    kubelet_update(tmp_path, files(ca, first))
    ctx = server_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    kubelet_update(tmp_path, {"tls.crt": second.cert_pem, "tls.key": first.key_pem})
    assert reload_once(ctx, tmp_path) is False
    kubelet_update(tmp_path, files(ca, second))
    assert reload_once(ctx, tmp_path) is True


def gauge() -> float | None:
    return REGISTRY.get_sample_value("podtier_cert_expiry_timestamp_seconds")


@pytest.mark.parametrize(
    ("lifetime", "warns"),
    [
        pytest.param(dt.timedelta(days=90), False, id="fresh-90-days"),
        pytest.param(dt.timedelta(days=20), True, id="under-30-days"),
    ],
)
def test_load_sets_expiry_gauge_and_warns_near_expiry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, lifetime: dt.timedelta, warns: bool
) -> None:
    now = dt.datetime.now(dt.UTC)
    ca = make_ca(now)
    serving = make_serving_cert(ca, now, dns_names=["localhost"], lifetime=lifetime)
    kubelet_update(tmp_path, files(ca, serving))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with caplog.at_level(logging.WARNING, logger="podtier.certs.reload"):
        assert Reloader(ctx, tmp_path, clock=lambda: now).reload()
    assert gauge() == serving.cert.not_valid_after_utc.timestamp()
    assert ("expires at" in caplog.text) is warns
