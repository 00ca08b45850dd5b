"""What podtier keeps in its `kubernetes.io/tls` Secret, and how that maps to Secret fields.

Secret `data` (base64, as always):

    tls.crt, tls.key          the serving pair every replica serves
    ca.crt, ca.key            the CA that signed tls.crt (ca.key absent: a CA podtier does not own)
    ca-next.crt, ca-next.key  a new CA being introduced (trusted, not yet signing)
    ca-previous.crt           the CA that signed the previous serving cert (still trusted)

Secret annotations:

    podtier.io/ca-next-since      when ca-next.crt entered the trust bundle (RFC 3339)
    podtier.io/ca-switched-at     when tls.crt moved to the current CA (RFC 3339)
    served.podtier.io/<replica>   "<sha256 of the CA that signed the cert it serves> <unix time>"

The trust bundle (every webhook's `caBundle`) is ca.crt + ca-next.crt + ca-previous.crt.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from podtier.certs.generate import CertPair, fingerprint

TLS_CERT, TLS_KEY = "tls.crt", "tls.key"
CA_CERT, CA_KEY = "ca.crt", "ca.key"
NEXT_CA_CERT, NEXT_CA_KEY = "ca-next.crt", "ca-next.key"
PREVIOUS_CA_CERT = "ca-previous.crt"
NEXT_SINCE = "podtier.io/ca-next-since"
SWITCHED_AT = "podtier.io/ca-switched-at"
HEARTBEAT_PREFIX = "served.podtier.io/"
MANAGED_BY = {"app.kubernetes.io/managed-by": "podtier"}


class StoredCertsError(ValueError):
    """The Secret exists but its contents are not a usable podtier pair."""


@dataclass(frozen=True)
class Heartbeat:
    """One replica's report: the CA that signed the certificate it serves, and when."""

    replica: str
    ca_sha256: str
    at: dt.datetime


@dataclass(frozen=True)
class StoredCerts:
    ca: CertPair  # key_pem == b"" when the CA key is not in the Secret
    serving: CertPair
    next_ca: CertPair | None = None
    previous_ca_pem: bytes | None = None
    next_ca_since: dt.datetime | None = None
    switched_at: dt.datetime | None = None
    heartbeats: tuple[Heartbeat, ...] = field(default=())

    @property
    def owns_ca_key(self) -> bool:
        return bool(self.ca.key_pem)

    @property
    def rotating(self) -> bool:
        return self.next_ca is not None or self.previous_ca_pem is not None

    def trusted_ca_pems(self) -> list[bytes]:
        pems = [self.ca.cert_pem]
        if self.next_ca is not None:
            pems.append(self.next_ca.cert_pem)
        if self.previous_ca_pem is not None:
            pems.append(self.previous_ca_pem)
        return list(dict.fromkeys(pems))

    def trust_bundle(self) -> bytes:
        return b"".join(self.trusted_ca_pems())

    def with_changes(self, **changes: Any) -> StoredCerts:
        return replace(self, **changes)


def issuing_ca_fingerprint(cert: x509.Certificate, ca_pems: list[bytes]) -> str | None:
    """SHA-256 of whichever of `ca_pems` signed `cert`, or None."""
    for pem in ca_pems:
        ca = x509.load_pem_x509_certificate(pem)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return fingerprint(ca)
    return None


def heartbeat_key(replica: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", replica).strip("-_.")[:63] or "replica"
    return HEARTBEAT_PREFIX + name


# ------------------------------------------------------------------ Secret <-> StoredCerts


def to_secret(stored: StoredCerts, name: str, namespace: str) -> dict[str, Any]:
    data = {
        TLS_CERT: stored.serving.cert_pem,
        TLS_KEY: stored.serving.key_pem,
        CA_CERT: stored.ca.cert_pem,
    }
    if stored.ca.key_pem:
        data[CA_KEY] = stored.ca.key_pem
    if stored.next_ca is not None:
        data[NEXT_CA_CERT], data[NEXT_CA_KEY] = stored.next_ca.cert_pem, stored.next_ca.key_pem
    if stored.previous_ca_pem is not None:
        data[PREVIOUS_CA_CERT] = stored.previous_ca_pem
    annotations: dict[str, str] = {}
    if stored.next_ca_since is not None:
        annotations[NEXT_SINCE] = stored.next_ca_since.isoformat()
    if stored.switched_at is not None:
        annotations[SWITCHED_AT] = stored.switched_at.isoformat()
    for beat in stored.heartbeats:
        annotations[heartbeat_key(beat.replica)] = f"{beat.ca_sha256} {int(beat.at.timestamp())}"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(MANAGED_BY),
            "annotations": annotations,
        },
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def from_secret(secret: dict[str, Any]) -> StoredCerts:
    """Parse a Secret as read from the API; StoredCertsError names the Secret and the field."""
    meta = secret.get("metadata") or {}
    where = f"Secret {meta.get('namespace', '')}/{meta.get('name', '')}"
    raw = secret.get("data") or {}
    data: dict[str, bytes] = {}
    for key, value in raw.items():
        try:
            data[key] = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raise StoredCertsError(f"{where}: data[{key!r}] is not base64") from None
    for key in (TLS_CERT, TLS_KEY, CA_CERT):
        if not data.get(key):
            raise StoredCertsError(f"{where}: data[{key!r}] is missing")
    for key in (TLS_CERT, CA_CERT, NEXT_CA_CERT, PREVIOUS_CA_CERT):
        if key in data:
            try:
                x509.load_pem_x509_certificate(data[key])
            except ValueError:
                raise StoredCertsError(f"{where}: data[{key!r}] is not a PEM certificate") from None
    annotations = meta.get("annotations") or {}
    next_ca = None
    if data.get(NEXT_CA_CERT) and data.get(NEXT_CA_KEY):
        next_ca = CertPair(data[NEXT_CA_CERT], data[NEXT_CA_KEY])
    return StoredCerts(
        ca=CertPair(data[CA_CERT], data.get(CA_KEY, b"")),
        serving=CertPair(data[TLS_CERT], data[TLS_KEY]),
        next_ca=next_ca,
        previous_ca_pem=data.get(PREVIOUS_CA_CERT),
        next_ca_since=_time(annotations.get(NEXT_SINCE)),
        switched_at=_time(annotations.get(SWITCHED_AT)),
        heartbeats=tuple(_heartbeats(annotations)),
    )


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _heartbeats(annotations: dict[str, str]) -> list[Heartbeat]:
    beats = []
    for key, value in sorted(annotations.items()):
        if not key.startswith(HEARTBEAT_PREFIX):
            continue
        try:
            ca_sha256, at = value.split()
            when = dt.datetime.fromtimestamp(int(at), dt.UTC)
        except ValueError:
            continue
        beats.append(Heartbeat(key.removeprefix(HEARTBEAT_PREFIX), ca_sha256, when))
    return beats
