"""The server context refuses TLS 1.1 and speaks TLS 1.2 and 1.3, checked with real
handshakes against a server on 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from podtier.certs.generate import CertPair
from podtier.certs.tls import server_context
from tests.certs.tls_helpers import LoopThread, client_context, https_get, start_tls_server


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def serve(loop: LoopThread, ctx: ssl.SSLContext) -> int:
    _server, port = loop.run(start_tls_server(ctx))
    return int(port)


def legacy_client(ca: CertPair, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = client_context(ca.cert_pem)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer the old protocol at all
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


@pytest.mark.parametrize(
    "version",
    [
        pytest.param(ssl.TLSVersion.TLSv1_2, id="tls1.2"),
        pytest.param(ssl.TLSVersion.TLSv1_3, id="tls1.3"),
    ],
)
def test_modern_versions_are_accepted(
    loop: LoopThread, cert_dir: Path, ca: CertPair, version: ssl.TLSVersion
) -> None:
    port = serve(loop, server_context(cert_dir / "tls.crt", cert_dir / "tls.key"))
    client = client_context(ca.cert_pem, minimum_version=version, maximum_version=version)
    status, _cert, negotiated = https_get(port, client)
    assert (status, negotiated) == (
        200,
        {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version],
    )


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_1_1_is_refused(loop: LoopThread, cert_dir: Path, ca: CertPair) -> None:
    # Control: the same client completes a TLS 1.1 handshake with a permissive server, so the
    # refusal below is the server context's doing.
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.minimum_version = ssl.TLSVersion.TLSv1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    permissive.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    _status, _cert, negotiated = https_get(
        serve(loop, permissive), legacy_client(ca, ssl.TLSVersion.TLSv1_1)
    )
    assert negotiated == "TLSv1.1"

    port = serve(loop, server_context(cert_dir / "tls.crt", cert_dir / "tls.key"))
    with pytest.raises(ssl.SSLError):
        https_get(port, legacy_client(ca, ssl.TLSVersion.TLSv1_1))
