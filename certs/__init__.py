"""podtier's certificates: make a CA and a serving pair, store them, inject and rotate them."""

from certs.generate import (
    CertPair,
    KeyKind,
    make_ca,
    make_serving_cert,
    service_dns_names,
    write_pair,
)

__all__ = [
    "CertPair",
    "KeyKind",
    "make_ca",
    "make_serving_cert",
    "service_dns_names",
    "write_pair",
]
