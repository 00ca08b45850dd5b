"""A certificate summarised for people: `podtier certs show` prints this."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass(frozen=True)
class CertSummary:
    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    serial: str
    sha256: str
    is_ca: bool
    key: str
    server_auth: bool


def summarize(cert: x509.Certificate) -> CertSummary:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns_names, ips = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        server_auth = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in eku
    except x509.ExtensionNotFound:
        server_auth = False
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        dns_names=dns_names,
        ip_addresses=ips,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=f"{cert.serial_number:x}",
        sha256=colon_hex(cert.fingerprint(hashes.SHA256())),
        is_ca=is_ca,
        key=_key_description(cert),
        server_auth=server_auth,
    )


def render(label: str, summary: CertSummary, now: dt.datetime) -> str:
    days_left = (summary.not_after - now).total_seconds() / 86400
    state = "EXPIRED" if days_left <= 0 else f"{days_left:.0f} days left"
    sans = [f"DNS:{name}" for name in summary.dns_names]
    sans += [f"IP:{ip}" for ip in summary.ip_addresses]
    lines = [
        f"{label}:",
        f"  subject:     {summary.subject}",
        f"  issuer:      {summary.issuer}",
        f"  SANs:        {', '.join(sans) if sans else '(none)'}",
        f"  not before:  {summary.not_before.isoformat()}",
        f"  not after:   {summary.not_after.isoformat()} ({state})",
        f"  serial:      {summary.serial}",
        f"  SHA-256:     {summary.sha256}",
        f"  key:         {summary.key}",
        f"  CA:          {'yes' if summary.is_ca else 'no'}",
    ]
    if not summary.is_ca:
        lines.append(f"  serverAuth:  {'yes' if summary.server_auth else 'NO'}")
    return "\n".join(lines)


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in digest)


def _key_description(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    return type(key).__name__
