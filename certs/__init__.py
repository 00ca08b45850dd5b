"""podtier's certificates: make a CA and a serving pair, store them, inject and rotate them.

Modules, pure first:

    generate   make a CA and a serving cert (ECDSA P-256 or RSA); atomic 0600 key writes
    lifetime   time left, renewal due (a third of life left), expiry warning
    describe   a certificate summarised for `podtier certs show`
    files      read and check tls.crt/tls.key or a CA from disk; errors name the file
    stored     the Secret's fields <-> StoredCerts; trust bundle; heartbeats
    plan       renewal, CA rotation steps, heartbeats, caBundle JSON patches
    tls        the server SSLContext (TLS 1.2 floor)
    reload     load a new pair into the live SSLContext on file changes (watchfiles)
    publish    write the pair into a directory kubelet-style (one atomic `..data` swap)
    kube       the Kubernetes calls (Secret get/create/update, webhook config get/patch)
    rbac       the least RBAC rules those calls need
    manager    CertManager: the reconcile loop for `serve --manage-certs`
    serving    the `serve --manage-certs` flags and start-up
    cli        `podtier certs generate|show`
"""

from podtier.certs.generate import (
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
