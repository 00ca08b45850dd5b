"""Read certificate files from disk and check them, with errors that name the file.

`read_serving_pair(dir)` reads `tls.crt` and `tls.key` and checks they parse and belong
together; `read_ca(cert_file, key_file)` reads a CA to sign with. Both raise `CertFileError`,
whose message is one line a user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from podtier.certs.generate import CertPair, key_matches_cert, load_private_key

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"


class CertFileError(ValueError):
    """A certificate or key file is missing, unreadable, malformed, or does not fit."""


@dataclass(frozen=True)
class ServingPair:
    """A serving certificate (with any chain after it) and its key, checked to match."""

    chain_pem: bytes
    key_pem: bytes
    cert: x509.Certificate


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertFileError(f"{path}: no such file") from None
    except OSError as error:
        raise CertFileError(f"{path}: cannot read ({error.strerror})") from None


def parse_certs(path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertFileError(f"{path}: not a PEM certificate") from None
    if not certs:
        raise CertFileError(f"{path}: no certificate in the file")
    return certs


def read_serving_pair(cert_dir: Path) -> ServingPair:
    cert_path, key_path = cert_dir / TLS_CERT, cert_dir / TLS_KEY
    chain_pem, key_pem = read_bytes(cert_path), read_bytes(key_path)
    cert = parse_certs(cert_path, chain_pem)[0]
    try:
        key = load_private_key(key_pem)
    except ValueError as error:
        raise CertFileError(f"{key_path}: not a usable private key ({error})") from None
    if not key_matches_cert(key, cert):
        raise CertFileError(
            f"{key_path}: key does not match the certificate in {cert_path} "
            f"(serial {cert.serial_number:x})"
        )
    return ServingPair(chain_pem=chain_pem, key_pem=key_pem, cert=cert)


def read_ca(cert_path: Path, key_path: Path) -> CertPair:
    """Read a CA certificate and its key; check it is a CA and that the key is its own."""
    cert_pem, key_pem = read_bytes(cert_path), read_bytes(key_path)
    cert = parse_certs(cert_path, cert_pem)[0]
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CertFileError(f"{cert_path}: not a CA certificate (basicConstraints CA is not set)")
    try:
        key = load_private_key(key_pem)
    except ValueError as error:
        raise CertFileError(f"{key_path}: not a usable private key ({error})") from None
    if not key_matches_cert(key, cert):
        raise CertFileError(f"{key_path}: key does not match the CA certificate in {cert_path}")
    return CertPair(cert_pem=cert.public_bytes(_PEM), key_pem=key_pem)


_PEM = serialization.Encoding.PEM
