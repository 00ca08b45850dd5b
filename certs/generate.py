"""Make a CA and a serving certificate signed by it (ECDSA P-256 by default, or RSA).

Pure functions of their arguments: the clock (`now`) is passed in. Writing to disk is
`write_pair`, which writes each file atomically (temp file + rename) and keys with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["ecdsa", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CA_LIFETIME = dt.timedelta(days=5 * 365)
SERVING_LIFETIME = dt.timedelta(days=90)
# Backdate notBefore a little, so a node whose clock is slightly behind accepts the cert.
CLOCK_SKEW = dt.timedelta(minutes=5)
RSA_BITS = 2048


@dataclass(frozen=True)
class CertPair:
    """A certificate and its key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def key(self) -> PrivateKey:
        return load_private_key(self.key_pem)


def load_private_key(key_pem: bytes) -> PrivateKey:
    """Parse a PEM private key; ValueError if it is not an unencrypted ECDSA or RSA key."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as error:  # encrypted key and no password
        raise ValueError("the key is encrypted (podtier needs an unencrypted key)") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"unsupported key type {type(key).__name__} (expected ECDSA or RSA)")
    return key


def key_matches_cert(key: PrivateKey, cert: x509.Certificate) -> bool:
    """True when `key` is the private half of the public key in `cert`."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex (what `openssl x509 -fingerprint` hashes)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names kube-apiserver may use to reach a Service: `svc`, `svc.ns`, `svc.ns.svc`, ..."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def new_key(kind: KeyKind = "ecdsa", rsa_bits: int = RSA_BITS) -> PrivateKey:
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        if rsa_bits < 2048:
            raise ValueError(f"RSA keys must be at least 2048 bits, got {rsa_bits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise ValueError(f"unknown key kind {kind!r} (expected ecdsa or rsa)")


def make_ca(
    now: dt.datetime,
    common_name: str = "podtier-ca",
    lifetime: dt.timedelta = CA_LIFETIME,
    key_kind: KeyKind = "ecdsa",
    rsa_bits: int = RSA_BITS,
) -> CertPair:
    key = new_key(key_kind, rsa_bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = builder.sign(key, hashes.SHA256())
    return CertPair(_cert_pem(cert), _key_pem(key))


def make_serving_cert(
    ca: CertPair,
    now: dt.datetime,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    lifetime: dt.timedelta = SERVING_LIFETIME,
    key_kind: KeyKind = "ecdsa",
    rsa_bits: int = RSA_BITS,
) -> CertPair:
    if not dns_names and not ip_addresses:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    ca_cert = ca.cert
    ca_key = ca.key
    key = new_key(key_kind, rsa_bits)
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    not_after = min(now + lifetime, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertPair(_cert_pem(cert), _key_pem(key))


def write_pair(directory: Path, ca: CertPair, serving: CertPair, write_ca_key: bool = True) -> None:
    """Write `ca.crt`, `tls.crt`, `tls.key` (and `ca.key`) atomically; keys get mode 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "ca.crt", ca.cert_pem, 0o644)
    if write_ca_key:
        write_atomic(directory / "ca.key", ca.key_pem, 0o600)
    write_atomic(directory / "tls.key", serving.key_pem, 0o600)
    write_atomic(directory / "tls.crt", serving.cert_pem, 0o644)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
