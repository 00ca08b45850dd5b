"""The decisions of in-cluster certificate management, as pure functions.

Given what the Secret holds, the time, and what the webhook configurations trust, decide the
next Secret contents and the `caBundle` patches. No I/O here: `certs.manager` reads and writes.
See `certs.manager` for the rotation protocol these steps implement.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from podtier.certs.generate import (
    CA_LIFETIME,
    SERVING_LIFETIME,
    CertPair,
    KeyKind,
    make_ca,
    make_serving_cert,
    service_dns_names,
)
from podtier.certs.lifetime import renewal_due
from podtier.certs.stored import Heartbeat, StoredCerts


@dataclass(frozen=True)
class Settings:
    service: str
    namespace: str
    ca_lifetime: dt.timedelta = CA_LIFETIME
    serving_lifetime: dt.timedelta = SERVING_LIFETIME
    key_kind: KeyKind = "ecdsa"
    # How long a new CA sits in every caBundle before any replica serves a cert it signed:
    # time for every kube-apiserver to pick up the patched webhook configuration.
    propagation: dt.timedelta = dt.timedelta(minutes=2)
    # A replica's heartbeat older than this is from a replica that is gone.
    heartbeat_ttl: dt.timedelta = dt.timedelta(minutes=5)

    @property
    def dns_names(self) -> list[str]:
        return service_dns_names(self.service, self.namespace)


@dataclass(frozen=True)
class Step:
    stored: StoredCerts
    reason: str


def initial(settings: Settings, now: dt.datetime) -> StoredCerts:
    ca = make_ca(now, lifetime=settings.ca_lifetime, key_kind=settings.key_kind)
    return StoredCerts(ca=ca, serving=_issue(ca, settings, now))


def next_step(
    stored: StoredCerts, settings: Settings, now: dt.datetime, webhooks_trust_next_ca: bool
) -> Step | None:
    """The one change the Secret needs now, or None. Call again after applying it."""
    if stored.previous_ca_pem is not None and _old_ca_retirable(stored, settings, now):
        return Step(
            stored.with_changes(previous_ca_pem=None, switched_at=None, heartbeats=()),
            "every replica serves a certificate from the new CA: old CA retired",
        )
    if (
        stored.next_ca is not None
        and stored.previous_ca_pem is None
        and webhooks_trust_next_ca
        and stored.next_ca_since is not None
        and now >= stored.next_ca_since + settings.propagation
    ):
        return Step(
            stored.with_changes(
                ca=stored.next_ca,
                serving=_issue(stored.next_ca, settings, now),
                next_ca=None,
                next_ca_since=None,
                previous_ca_pem=stored.ca.cert_pem,
                switched_at=now,
            ),
            "the new CA is trusted by every webhook: serving certificate now signed by it",
        )
    if not stored.owns_ca_key:
        return None  # not our CA: nothing to sign with (expiry is still warned about)
    if not stored.rotating and renewal_due(stored.ca.cert, now):
        return Step(
            stored.with_changes(
                next_ca=make_ca(now, lifetime=settings.ca_lifetime, key_kind=settings.key_kind),
                next_ca_since=now,
            ),
            f"CA expires {stored.ca.cert.not_valid_after_utc.isoformat()}: new CA introduced",
        )
    why = serving_problem(stored, settings, now)
    if why:
        return Step(stored.with_changes(serving=_issue(stored.ca, settings, now)), why)
    return None


def serving_problem(stored: StoredCerts, settings: Settings, now: dt.datetime) -> str | None:
    """Why the serving certificate must be reissued, or None if it is fine."""
    cert = stored.serving.cert
    if renewal_due(cert, now):
        return f"serving certificate expires {cert.not_valid_after_utc.isoformat()}: renewed"
    try:
        cert.verify_directly_issued_by(stored.ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return "serving certificate is not signed by the current CA: reissued"
    if not set(settings.dns_names) <= set(_dns_names(cert)):
        return f"serving certificate does not cover {settings.dns_names}: reissued"
    return None


def with_heartbeat(
    stored: StoredCerts,
    settings: Settings,
    replica: str,
    served_ca_sha256: str | None,
    now: dt.datetime,
) -> StoredCerts | None:
    """Record this replica's served CA while a rotation runs; None when nothing needs writing.

    Beats are written only during a rotation, and only when new, changed or half-way to stale,
    so a quiet cluster does not rewrite its Secret. Stale beats are dropped on the way.
    """
    fresh = [b for b in stored.heartbeats if now - b.at < settings.heartbeat_ttl]
    if not stored.rotating or served_ca_sha256 is None:
        return stored.with_changes(heartbeats=()) if stored.heartbeats else None
    mine = next((b for b in fresh if b.replica == replica), None)
    if (
        mine is not None
        and mine.ca_sha256 == served_ca_sha256
        and now - mine.at < settings.heartbeat_ttl / 2
        and len(fresh) == len(stored.heartbeats)
    ):
        return None
    others = [b for b in fresh if b.replica != replica]
    beats = (*others, Heartbeat(replica, served_ca_sha256, now))
    return stored.with_changes(heartbeats=tuple(sorted(beats, key=lambda b: b.replica)))


def _old_ca_retirable(stored: StoredCerts, settings: Settings, now: dt.datetime) -> bool:
    if stored.switched_at is None or now < stored.switched_at + settings.heartbeat_ttl:
        return False
    current = stored.ca.cert.fingerprint(_SHA256).hex()
    fresh = [b for b in stored.heartbeats if now - b.at < settings.heartbeat_ttl]
    return bool(fresh) and all(b.ca_sha256 == current for b in fresh)


def ca_bundle_patch(config: dict[str, Any], bundle_pem: bytes) -> list[dict[str, Any]]:
    """JSON Patch setting `caBundle` on every webhook of a webhook configuration that lacks it.

    Each change is guarded by a `test` of the webhook's name at that index, so a configuration
    reordered in between makes the patch fail (and the next check redo it) instead of landing
    on the wrong webhook.
    """
    wanted = base64.b64encode(bundle_pem).decode()
    ops: list[dict[str, Any]] = []
    for index, webhook in enumerate(config.get("webhooks") or []):
        if (webhook.get("clientConfig") or {}).get("caBundle") == wanted:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]})
        prefix = f"/webhooks/{index}/clientConfig"
        if "clientConfig" in webhook:
            ops.append({"op": "add", "path": f"{prefix}/caBundle", "value": wanted})
        else:
            ops.append({"op": "add", "path": prefix, "value": {"caBundle": wanted}})
    return ops


def trusts(config: dict[str, Any] | None, ca_pem: bytes) -> bool:
    """True when every webhook in the configuration has `ca_pem` in its caBundle."""
    if config is None or not config.get("webhooks"):
        return False
    for webhook in config["webhooks"]:
        bundle = (webhook.get("clientConfig") or {}).get("caBundle") or ""
        try:
            pems = base64.b64decode(bundle)
        except ValueError:
            return False
        if ca_pem.strip() not in pems:
            return False
    return True


def _issue(ca: CertPair, settings: Settings, now: dt.datetime) -> CertPair:
    return make_serving_cert(
        ca,
        now,
        dns_names=settings.dns_names,
        lifetime=settings.serving_lifetime,
        key_kind=settings.key_kind,
    )


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(sans.get_values_for_type(x509.DNSName))


_SHA256 = hashes.SHA256()
