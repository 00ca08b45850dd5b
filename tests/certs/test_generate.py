"""The certificates podtier makes, checked by independent verifiers (openssl and
cryptography's X.509 path validation), not by podtier's own code."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from podtier.certs.generate import make_ca, make_serving_cert, service_dns_names, write_pair

NOW = dt.datetime.now(dt.UTC)
SERVICE_NAMES = service_dns_names("podtier", "airflow")


def openssl_verify(ca_file: Path, cert_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(ca_file),
            "-purpose",
            "sslserver",
            *extra,
            str(cert_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def verify_for(ca_pem: bytes, leaf: x509.Certificate, name: x509.GeneralName) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    builder = PolicyBuilder().store(Store([ca_cert])).time(NOW)
    builder.build_server_verifier(name).verify(leaf, [])


@pytest.mark.parametrize(
    "key_kind", [pytest.param("ecdsa", id="ecdsa"), pytest.param("rsa", id="rsa")]
)
def test_written_pair_verifies_with_openssl_for_every_service_name(
    tmp_path: Path, key_kind: str
) -> None:
    ca = make_ca(NOW, key_kind=key_kind)  # type: ignore[arg-type]
    serving = make_serving_cert(ca, NOW, dns_names=SERVICE_NAMES, key_kind=key_kind)  # type: ignore[arg-type]
    write_pair(tmp_path, ca, serving)
    for name in SERVICE_NAMES:
        result = openssl_verify(tmp_path / "ca.crt", tmp_path / "tls.crt", "-verify_hostname", name)
        assert result.returncode == 0, result.stdout + result.stderr
    wrong = openssl_verify(
        tmp_path / "ca.crt", tmp_path / "tls.crt", "-verify_hostname", "evil.example"
    )
    assert wrong.returncode != 0


def test_chain_does_not_verify_against_another_ca(tmp_path: Path) -> None:
    ca, other = make_ca(NOW), make_ca(NOW)
    write_pair(tmp_path, ca, make_serving_cert(ca, NOW, dns_names=SERVICE_NAMES))
    (tmp_path / "other.crt").write_bytes(other.cert_pem)
    assert openssl_verify(tmp_path / "other.crt", tmp_path / "tls.crt").returncode != 0


def test_path_validation_accepts_service_names_and_ip_and_rejects_others() -> None:
    ca = make_ca(NOW)
    leaf = make_serving_cert(ca, NOW, dns_names=SERVICE_NAMES, ip_addresses=["127.0.0.1"]).cert
    for name in SERVICE_NAMES:
        verify_for(ca.cert_pem, leaf, x509.DNSName(name))
    verify_for(ca.cert_pem, leaf, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    with pytest.raises(VerificationError):
        verify_for(ca.cert_pem, leaf, x509.DNSName("podtier.default.svc"))


def test_serving_cert_is_for_servers_only_and_not_a_ca() -> None:
    ca = make_ca(NOW)
    leaf = make_serving_cert(ca, NOW, dns_names=SERVICE_NAMES).cert
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    # A cert "issued" with the serving pair as its CA fails independent path validation.
    serving = make_serving_cert(ca, NOW, dns_names=["issuer.example"])
    grandchild = make_serving_cert(serving, NOW, dns_names=["child.example"]).cert
    ca_cert = ca.cert
    verifier = (
        PolicyBuilder()
        .store(Store([ca_cert]))
        .time(NOW)
        .build_server_verifier(x509.DNSName("child.example"))
    )
    with pytest.raises(VerificationError):
        verifier.verify(grandchild, [serving.cert])


def test_keys_are_written_0600_and_certs_are_readable(tmp_path: Path) -> None:
    ca = make_ca(NOW)
    write_pair(tmp_path, ca, make_serving_cert(ca, NOW, dns_names=["a"]))
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"ca.crt": 0o644, "ca.key": 0o600, "tls.crt": 0o644, "tls.key": 0o600}


@pytest.mark.parametrize(
    ("key_kind", "bits", "expected"),
    [
        pytest.param("ecdsa", 2048, "secp256r1", id="ecdsa-p256"),
        pytest.param("rsa", 2048, 2048, id="rsa-2048"),
        pytest.param("rsa", 3072, 3072, id="rsa-3072"),
    ],
)
def test_key_kinds(key_kind: str, bits: int, expected: object) -> None:
    ca = make_ca(NOW)
    key = make_serving_cert(
        ca, NOW, dns_names=["a"], key_kind=key_kind, rsa_bits=bits
    ).cert.public_key()  # type: ignore[arg-type]
    if isinstance(key, ec.EllipticCurvePublicKey):
        assert key.curve.name == expected
    else:
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == expected


def test_rsa_below_2048_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="2048"):
        make_serving_cert(make_ca(NOW), NOW, dns_names=["a"], key_kind="rsa", rsa_bits=1024)


def test_serving_cert_never_outlives_its_ca() -> None:
    ca = make_ca(NOW, lifetime=dt.timedelta(days=10))
    leaf = make_serving_cert(ca, NOW, dns_names=["a"], lifetime=dt.timedelta(days=90)).cert
    assert leaf.not_valid_after_utc == ca.cert.not_valid_after_utc
