"""How much life a certificate has left, and when to renew it or warn about it (pure)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

# Renew (or rotate) when a third of the certificate's life is left.
RENEW_AT_FRACTION_LEFT = 1 / 3
# Warn when expiry is this close, or when renewal is already due, whichever comes first.
WARN_BEFORE = dt.timedelta(days=30)


def lifetime(cert: x509.Certificate) -> dt.timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def time_left(cert: x509.Certificate, now: dt.datetime) -> dt.timedelta:
    return cert.not_valid_after_utc - now


def renewal_due(
    cert: x509.Certificate, now: dt.datetime, fraction_left: float = RENEW_AT_FRACTION_LEFT
) -> bool:
    """True once no more than `fraction_left` of the certificate's life remains."""
    return time_left(cert, now) <= lifetime(cert) * fraction_left


def expiry_warning(
    cert: x509.Certificate, now: dt.datetime, warn_before: dt.timedelta = WARN_BEFORE
) -> str | None:
    """A one-line warning when the certificate is expired or near expiry, else None."""
    left = time_left(cert, now)
    expires = cert.not_valid_after_utc.isoformat()
    if left <= dt.timedelta(0):
        return f"certificate serial {cert.serial_number:x} expired at {expires}"
    if left < warn_before or renewal_due(cert, now):
        days = left.total_seconds() / 86400
        return (
            f"certificate serial {cert.serial_number:x} expires at {expires} "
            f"(in {days:.1f} days); renew it"
        )
    return None
